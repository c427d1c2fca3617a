import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * An upstream's own `x-cache` (a CDN or Varnish behind the gateway) on a
 * cached route: the client gets the gateway's one value, on the miss, from
 * the stored entry's hits, and on an answer that is not stored (A12's F7: the
 * upstream's came first, and a tool reading the first value read it).
 */
describe('an upstream\'s x-cache on a cached route', () => {
  let upstream: TestUpstream;
  let gateway: Gateway & { url: string };
  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      res.setHeader('x-cache', 'HIT from cdn');
      res.setHeader('cache-control', req.url === '/c/private' ? 'no-store' : 'max-age=60');
      res.end('body');
    });
    gateway = await startGatewayFromYaml(`
services:
  up: { upstreams: ["${upstream.url}"] }
routes:
  - { path: /c/*, service: up, cache: { ttl: 60s } }
  - { path: /plain/*, service: up }
`, defaultPipeline);
  });
  afterAll(async () => {
    await gateway.close();
    await upstream.close();
  });

  const xCache = async (path: string): Promise<string | string[] | undefined> => {
    const res = await request(`${gateway.url}${path}`);
    await res.body.text();
    return res.headers['x-cache'];
  };

  it('answers the miss, the hits of its entry and an answer not stored with the gateway\'s x-cache only', async () => {
    expect([await xCache('/c/page'), await xCache('/c/page'), await xCache('/c/private')]).toEqual(['MISS', 'HIT', 'MISS']);
  });

  it('passes it on a route without the cache', async () => {
    expect(await xCache('/plain/page')).toBe('HIT from cdn');
  });
});
