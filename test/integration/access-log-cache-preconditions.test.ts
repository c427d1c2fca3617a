import pino from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * The access log's `cache` field when a fresh hit is answered 304 or 412 by
 * the request's own preconditions, and for a STALE hit (F18's note: it
 * seemed the 304/412 left it unset, the response saying x-cache: HIT).
 */
describe('the access log\'s cache field for hits answered by their preconditions', () => {
  let upstream: TestUpstream;
  let gateway: Gateway & { url: string };
  const lines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      res.setHeader('etag', '"v1"');
      // Already past max-age when it comes (Age counts against it), inside stale-while-revalidate.
      if (req.url === '/c/stale') res.setHeader('age', '5');
      res.setHeader('cache-control', req.url === '/c/stale' ? 'max-age=1, stale-while-revalidate=600' : 'max-age=600');
      res.end('body');
    });
    const logger = pino({ level: 'info' }, { write: (l: string) => { const line = JSON.parse(l) as Record<string, unknown>; if (line.msg === 'access') lines.push(line); } });
    gateway = await startGatewayFromYaml(`
services:
  up: { upstreams: ["${upstream.url}"] }
routes:
  - { path: /c/*, service: up, cache: { ttl: 60s } }
`, defaultPipeline, process.env, { logger });
  });
  afterAll(async () => {
    await gateway.close();
    await upstream.close();
  });

  /** The answer's status and x-cache, and its access line's status and cache. */
  async function logged(path: string, headers: Record<string, string> = {}): Promise<unknown[]> {
    const before = lines.length;
    const res = await request(`${gateway.url}${path}`, { headers });
    await res.body.dump();
    await until(() => lines.length > before);
    const line = lines[lines.length - 1]!;
    return [res.statusCode, res.headers['x-cache'], line.status, line.cache];
  }

  it('logs HIT for a fresh hit answered 304 and one answered 412, as their x-cache says', async () => {
    expect(await logged('/c/page')).toEqual([200, 'MISS', 200, 'MISS']);
    expect(await logged('/c/page', { 'if-none-match': '"v1"' })).toEqual([304, 'HIT', 304, 'HIT']);
    expect(await logged('/c/page', { 'if-match': '"other"' })).toEqual([412, 'HIT', 412, 'HIT']);
  });

  it('logs STALE for a hit served stale under stale-while-revalidate (its preconditions not evaluated)', async () => {
    expect(await logged('/c/stale')).toEqual([200, 'MISS', 200, 'MISS']);
    expect(await logged('/c/stale', { 'if-none-match': '"v1"' })).toEqual([200, 'STALE', 200, 'STALE']);
  });
});
