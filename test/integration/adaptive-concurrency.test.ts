import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

describe('adaptive concurrency from YAML', () => {
  it('answers 503 at once past the limit, without reaching the upstream, and admits again once a slot frees', async () => {
    const waiting: Array<() => void> = [];
    const up = await startUpstream((req, res) => {
      req.resume();
      waiting.push(() => res.end('done'));
    });
    open.push(up);
    const gw = await startGatewayFromYaml(`
services:
  svc:
    upstreams: ["${up.url}"]
    adaptiveConcurrency: { initialLimit: 2, minLimit: 1, maxLimit: 2 }
routes:
  - { path: /*, service: svc }
`);
    open.push(gw);
    const first = request(`${gw.url}/a`);
    const second = request(`${gw.url}/b`);
    await vi.waitFor(() => expect(waiting).toHaveLength(2));
    const third = await request(`${gw.url}/c`);
    expect(third.statusCode).toBe(503);
    expect(await third.body.json()).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE' } });
    expect(waiting).toHaveLength(2);
    waiting.shift()!();
    expect(await (await first).body.text()).toBe('done');
    const fourth = request(`${gw.url}/d`);
    await vi.waitFor(() => expect(waiting).toHaveLength(2));
    for (const w of waiting.splice(0)) w();
    expect((await second).statusCode).toBe(200);
    expect((await fourth).statusCode).toBe(200);
  });
});
