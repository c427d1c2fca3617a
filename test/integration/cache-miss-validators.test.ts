import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { rawRequest } from '../support/http.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * Browsers revalidate: their GETs carry If-None-Match. A cache that forwards
 * it on a miss gets a 304 from the upstream, stores nothing, and misses for
 * every later plain GET. nginx's proxy_cache clears the validators from the
 * request it sends when the answer may be stored, stores the 200 and answers
 * the client's conditionals from it; rxgate now does the same, and its
 * background stale-while-revalidate refresh sends none of the client's
 * either (it sends the stored entry's: cache-revalidate.test.ts).
 */

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Seen { url: string; headers: IncomingHttpHeaders }

/** An upstream that answers as HTTP says: 304 to If-None-Match "e1", else a 200 with that ETag; keeps what it got. */
async function upstream(cacheControl: string, extra: Record<string, string> = {}) {
  const seen: Seen[] = [];
  const up = await startUpstream((req, res) => {
    req.resume();
    seen.push({ url: req.url ?? '', headers: req.headers });
    if (req.headers['if-none-match'] === '"e1"') {
      res.writeHead(304, { etag: '"e1"', 'cache-control': cacheControl }).end();
      return;
    }
    res.writeHead(200, { etag: '"e1"', 'cache-control': cacheControl, 'content-type': 'text/plain', ...extra }).end(`body ${seen.length}`);
  });
  cleanups.push(() => up.close());
  return { url: up.url, seen };
}

async function gateway(upstreamUrl: string): Promise<string> {
  const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${upstreamUrl}"] }
routes:
  - { path: /*, service: api, cache: { ttl: 60s } }
`);
  cleanups.push(() => gw.close());
  return gw.url;
}

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers, headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

const validatorsOf = (s: Seen): string[] => ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'].filter((v) => s.headers[v] !== undefined);

describe('validators on a miss the cache may store', () => {
  it('a browser\'s revalidating GET on a cold cache gets its 304, the upstream sees no If-None-Match, and the next plain GET is a HIT', async () => {
    const up = await upstream('max-age=60');
    const gw = await gateway(up.url);

    const first = await get(`${gw}/page`, { 'if-none-match': '"e1"' });
    expect([first.status, first.headers['x-cache'], first.headers.etag, first.body]).toEqual([304, 'MISS', '"e1"', '']);
    expect(up.seen.map(validatorsOf)).toEqual([[]]);

    const plain = await get(`${gw}/page`);
    expect([plain.status, plain.headers['x-cache'], plain.body]).toEqual([200, 'HIT', 'body 1']);
    const again = await get(`${gw}/page`, { 'if-none-match': '"e1"' });
    expect([again.status, again.headers['x-cache']]).toEqual([304, 'HIT']);
    expect(up.seen).toHaveLength(1);
  });

  it('a revalidating GET whose ETag is out of date gets the stored 200 whole, and a failing If-Match a 412', async () => {
    const up = await upstream('max-age=60');
    const gw = await gateway(up.url);
    const old = await get(`${gw}/a`, { 'if-none-match': '"e0"' });
    expect([old.status, old.headers['x-cache'], old.body]).toEqual([200, 'MISS', 'body 1']);
    const failed = await get(`${gw}/b`, { 'if-match': '"zzz"' });
    expect([failed.status, failed.headers['x-cache']]).toEqual([412, 'MISS']);
    expect((await get(`${gw}/b`)).headers['x-cache']).toBe('HIT');
    expect(up.seen.map(validatorsOf)).toEqual([[], []]);
  });

  it('an answer the cache does not store is evaluated against the client\'s preconditions as the upstream would have, else given as it came', async () => {
    for (const cc of ['no-store', 'private, max-age=60']) {
      const up = await upstream(cc);
      const gw = await gateway(up.url);
      const same = await get(`${gw}/nostore`, { 'if-none-match': '"e1"' });
      expect([same.status, same.headers['x-cache'], same.headers.etag, same.body], cc).toEqual([304, 'MISS', '"e1"', '']);
      const failed = await get(`${gw}/nostore`, { 'if-match': '"e0"' });
      expect([failed.status, failed.headers['x-cache']], cc).toEqual([412, 'MISS']);
      const other = await get(`${gw}/nostore`, { 'if-none-match': '"e0"' });
      expect([other.status, other.headers['x-cache'], other.body], cc).toEqual([200, 'MISS', 'body 3']);
      expect(up.seen.map(validatorsOf), cc).toEqual([[], [], []]);
    }
  });
});

describe('the background stale-while-revalidate refresh', () => {
  it('carries none of the client\'s validators (the stored ETag instead) and keeps a bare ?', async () => {
    // Age past max-age: stored already stale, inside its stale-while-revalidate window.
    const up = await upstream('max-age=1, stale-while-revalidate=600', { age: '5' });
    const gw = await gateway(up.url);
    // undici drops a bare ? from a URL: the target is written by hand
    const swr = (extra: string) => rawRequest(gw, `GET /swr? HTTP/1.1\r\nHost: gw\r\n${extra}Connection: close\r\n\r\n`);
    const xCache = (r: Awaited<ReturnType<typeof swr>>) => r.headerLines.find(([n]) => n === 'x-cache')?.[1];
    expect(xCache(await swr(''))).toBe('MISS');
    const stale = await swr('If-None-Match: "e0"\r\nIf-Modified-Since: Wed, 21 Oct 2015 07:28:00 GMT\r\n');
    expect([stale.status, xCache(stale)]).toEqual([200, 'STALE']);
    await until(() => up.seen.length === 2);
    expect(up.seen.map((s) => s.url)).toEqual(['/swr?', '/swr?']);
    expect(validatorsOf(up.seen[1]!)).toEqual(['if-none-match']);
    expect(up.seen[1]!.headers['if-none-match']).toBe('"e1"');
  });
});
