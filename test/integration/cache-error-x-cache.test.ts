import { createServer } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml } from '../support/servers.ts';

/**
 * The gateway's own error answers on a cached route carry `x-cache`, as
 * every other answer there does (A12's F14: a 502 had none, so a client
 * could not tell a cached route's failure from an uncached one's).
 */

/** A loopback port nothing listens on (bound, then closed): a connection to it is refused. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('x-cache on the gateway\'s own error answers', () => {
  let gateway: (Gateway & { url: string }) | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });

  it('gives a cached route\'s 502 x-cache: MISS, once, and leaves the only-if-cached 504\'s one value and an uncached route\'s 502 alone', async () => {
    const port = await closedPort();
    gateway = await startGatewayFromYaml(`
services:
  gone: { upstreams: ["http://127.0.0.1:${port}"], retry: false }
routes:
  - { path: /cached/*, service: gone, cache: { ttl: 60s } }
  - { path: /plain/*, service: gone }
`, defaultPipeline);
    const get = async (path: string, headers: Record<string, string> = {}): Promise<[number, string | string[] | undefined]> => {
      const res = await request(`${gateway!.url}${path}`, { headers });
      await res.body.dump();
      return [res.statusCode, res.headers['x-cache']];
    };
    expect(await get('/cached/x')).toEqual([502, 'MISS']);
    expect(await get('/cached/y', { 'cache-control': 'only-if-cached' })).toEqual([504, 'MISS']);
    expect(await get('/plain/x')).toEqual([502, undefined]);
  });
});
