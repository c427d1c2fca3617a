import type { IncomingHttpHeaders } from 'node:http';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * A client's X-Request-Id is the request's id (access log, upstream, answer)
 * only when it is 1-200 visible ASCII characters; any other is replaced by
 * the gateway's own (audit A5: a 3,000-character id was logged on every
 * line, forwarded and echoed).
 */

let up: TestUpstream;
let gw: Gateway & { url: string };
const raw: string[] = [];
/** The X-Request-Id the upstream got, by path. */
const seen = new Map<string, IncomingHttpHeaders[string]>();

beforeAll(async () => {
  up = await startUpstream((req, res) => { seen.set(req.url!, req.headers['x-request-id']); req.resume(); res.end('ok'); });
  const logger = pino({ name: 'rxgate', level: 'info' }, { write: (line: string) => void raw.push(line) });
  gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /api/*, service: api }
`, defaultPipeline, process.env, { logger });
});

afterAll(async () => {
  await gw.close();
  await up.close();
});

/** The id the answer echoes, the one the upstream got and the access line's, for a request sending `id`. */
async function ids(path: string, id: string): Promise<{ echoed: string; upstream: unknown; logged: unknown }> {
  const res = await request(`${gw.url}${path}`, { headers: { 'x-request-id': id } });
  await res.body.text();
  let line: Record<string, unknown> | undefined;
  await until(() => (line = raw.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'access' && l.path === path)) !== undefined);
  return { echoed: res.headers['x-request-id'] as string, upstream: seen.get(path), logged: line!.reqId };
}

describe('a client\'s X-Request-Id', () => {
  it('is kept when it is a 36-character UUID, and at 200 characters', async () => {
    const uuid = '3f1c2a9e-41b7-4d3c-8a2e-5f0c2a9e41b7';
    expect(await ids('/api/uuid', uuid)).toEqual({ echoed: uuid, upstream: uuid, logged: uuid });
    const long = 'k'.repeat(200);
    expect(await ids('/api/200', long)).toEqual({ echoed: long, upstream: long, logged: long });
  });

  for (const [what, id] of [['of 300 characters', 'x'.repeat(300)], ['of 3,000 characters', 'y'.repeat(3000)], ['with a space', 'abc 123'], ['with a tab', 'abc\t123']] as const) {
    it(`is replaced by the gateway's own when it is ${what}, in the answer, upstream and the access log`, async () => {
      const path = `/api/${what.replace(/\W/g, '-')}`;
      const got = await ids(path, id);
      expect(got.echoed).not.toBe(id);
      expect(got.echoed).toMatch(/^[0-9a-f]{16}-\d+$/);
      expect(got.upstream).toBe(got.echoed);
      expect(got.logged).toBe(got.echoed);
    });
  }
});
