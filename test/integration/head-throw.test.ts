import { of } from 'rxjs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../support/servers.ts';

/**
 * A plain-JS handler or stage that puts a number in a header makes uWS's
 * header write throw. For an answer without a body written inside the uWS
 * handler (a 204, a HEAD), the response must stay open and watched for the
 * client going away: uWS terminates the whole process (SIGABRT, "Returning
 * from a request handler without responding or attaching an abort handler
 * is forbidden") when a handler returns with neither.
 */
let gw: Awaited<ReturnType<typeof startGateway>>;
const thrown: unknown[] = [];
const onUncaught = (err: unknown): void => { thrown.push(err); };

beforeAll(async () => {
  process.on('uncaughtException', onUncaught);
  const numberHeader = ['x-count', 5 as unknown as string];
  gw = await startGateway([
    { path: '/none', handler: () => of({ status: 204, headers: numberHeader, body: null }) },
    { path: '/ok', handler: () => of({ status: 200, headers: ['content-type', 'text/plain'], body: null }) },
  ]);
});
afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  await gw.close();
});

describe('a response head that throws as it is written', () => {
  // Since review RR2 #4 the head is refused before uWS sees it: a 500 in its place (response-head-refused.test.ts).
  it('leaves the process serving: the client gets a 500 in its place, nothing thrown, the next request is answered', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await request(`${gw.url}/none`, { method });
      await res.body.text();
      expect(res.statusCode).toBe(500);
    }
    const ok = await request(`${gw.url}/ok`);
    await ok.body.text();
    expect(ok.statusCode).toBe(200);
    expect(thrown).toEqual([]);
  });
});
