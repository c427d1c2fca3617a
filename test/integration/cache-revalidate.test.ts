import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { createRedisClient, type RedisClient } from '../../lib/resources/redis-client.ts';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import { RedisCacheStore } from '../../lib/stages/cache/redis-store.ts';
import { systemRuntime, type Runtime } from '../../lib/runtime.ts';
import { rawRequest } from '../support/http.ts';
import { redisUrl } from '../support/redis.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * A stored response past its freshness is revalidated, as nginx's
 * `proxy_cache_revalidate on` does: the upstream gets the stored ETag as
 * If-None-Match and the stored Last-Modified as If-Modified-Since (never the
 * client's), and its 304 freshens the entry, whose body answers the client
 * (x-cache: REVALIDATED). Before, the entry was fetched whole (or was gone
 * from the store once its stale windows had closed). The gateway's wall
 * clock is skewed forward to make entries expire; the upstream and the
 * client are real.
 */

const LM = 'Wed, 21 Oct 2015 07:28:00 GMT';
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface Seen { url: string; headers: IncomingHttpHeaders; port: number | undefined }

/** An upstream answering `reply(n, headers)` for its n-th request (from 1); keeps what it got. */
async function upstream(reply: (n: number, h: IncomingHttpHeaders, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const up = await startUpstream((req, res) => {
    req.resume();
    seen.push({ url: req.url ?? '', headers: req.headers, port: req.socket.remotePort });
    reply(seen.length, req.headers, res);
  });
  cleanups.push(() => up.close());
  return { url: up.url, seen };
}

/** A gateway whose cache clock runs `skew.ms` ahead of the real one. */
async function gateway(upstreamUrl: string, extra = '') {
  const skew = { ms: 0 };
  const runtime: Runtime = { ...systemRuntime, wallNow: () => Date.now() + skew.ms };
  const gw = await startGatewayFromYaml(`
${extra}
services:
  api: { upstreams: ["${upstreamUrl}"] }
routes:
  - { path: /*, service: api, cache: { ttl: 60s${extra === '' ? '' : ', store: redis'} } }
`, undefined, process.env, { runtime });
  cleanups.push(() => gw.close());
  return { url: gw.url, skew, metrics: () => gw.metrics.registry.metrics() };
}

/**
 * An upstream on a raw socket, for framings Node's http server would not
 * send: `reply(n, head)` gives the bytes for the n-th request (from 1) and
 * its head (the request line and header lines). Counts connections.
 */
async function rawUpstream(reply: (n: number, head: string) => string) {
  let n = 0;
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let i = buf.indexOf('\r\n\r\n'); i >= 0; i = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, i);
        buf = buf.slice(i + 4);
        sock.write(reply(++n, head));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  let connections = 0;
  server.on('connection', () => connections++);
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => n, connections: () => connections };
}

/** 200 with ETag "e1" and `cc` to a request without If-None-Match, else a 304 that carries the 200's Content-Length and no body (RFC 9110 §8.6 allows it). */
const contentLength304 = (cc: string, etag304 = '"e1"') => rawUpstream((n, head) => (/^if-none-match:/im.test(head)
  ? `HTTP/1.1 304 Not Modified\r\nETag: ${etag304}\r\nCache-Control: max-age=120\r\nContent-Length: 6\r\n\r\n`
  : `HTTP/1.1 200 OK\r\nETag: "e1"\r\nCache-Control: ${cc}\r\nContent-Length: 6\r\n\r\nbody ${n % 10}`));

async function get(url: string, headers: Record<string, string> = {}) {
  const res = await request(url, { headers, headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

const view = (r: Awaited<ReturnType<typeof get>>): unknown[] => [r.status, r.headers['x-cache'], r.body];
const conditionalsOf = (s: Seen): Record<string, unknown> => ({ inm: s.headers['if-none-match'], ims: s.headers['if-modified-since'], im: s.headers['if-match'] });

/** 200 with ETag "e1" and max-age=60 for the first request; a 304 (max-age=120) to If-None-Match "e1" after. */
const etagUpstream = () => upstream((n, h, res) => {
  if (n > 1 && h['if-none-match'] === '"e1"') {
    res.writeHead(304, { etag: '"e1"', 'cache-control': 'max-age=120', 'x-version': 'two' }).end();
    return;
  }
  res.writeHead(200, { etag: '"e1"', 'cache-control': 'max-age=60', 'content-type': 'text/plain', 'x-version': 'one' }).end(`body ${n}`);
});

describe('an expired entry with a validator is revalidated with the upstream', () => {
  it('sends the stored ETag, and the 304 answers 200 with the stored body (REVALIDATED, age 0, the 304\'s fields), the next request a HIT with the new freshness', async () => {
    const up = await etagUpstream();
    const gw = await gateway(up.url);
    expect(view(await get(`${gw.url}/doc`))).toEqual([200, 'MISS', 'body 1']);
    gw.skew.ms = 61_000;
    const revalidated = await get(`${gw.url}/doc`);
    expect(view(revalidated)).toEqual([200, 'REVALIDATED', 'body 1']);
    expect([revalidated.headers.age, revalidated.headers['cache-control'], revalidated.headers['x-version'], revalidated.headers['content-length']]).toEqual(['0', 'max-age=120', 'two', '6']);
    expect(up.seen.map(conditionalsOf)).toEqual([{}, { inm: '"e1"' }].map((c) => ({ inm: undefined, ims: undefined, im: undefined, ...c })));
    // fresh for 120 s from the revalidation: still a HIT 100 s later
    gw.skew.ms = 161_000;
    expect(view(await get(`${gw.url}/doc`))).toEqual([200, 'HIT', 'body 1']);
    expect(up.seen).toHaveLength(2);
    expect(await gw.metrics()).toMatch(/rxgate_cache_requests_total\{route="[^"]*",result="revalidated"\} 1\n/);
  });

  it('keeps the upstream connection: the answer waits for the 304\'s exchange to end instead of cancelling it (undici closed the socket)', async () => {
    const up = await etagUpstream();
    const gw = await gateway(up.url);
    await get(`${gw.url}/conn`);
    for (const skew of [61_000, 200_000, 400_000]) {
      gw.skew.ms = skew;
      expect((await get(`${gw.url}/conn`)).headers['x-cache']).toBe('REVALIDATED');
    }
    expect(new Set(up.seen.map((s) => s.port)).size).toBe(1);
  });

  it('sends the stored Last-Modified as If-Modified-Since when there is no ETag', async () => {
    const up = await upstream((n, h, res) => {
      if (n > 1 && h['if-modified-since'] === LM) res.writeHead(304, { 'last-modified': LM }).end();
      else res.writeHead(200, { 'last-modified': LM, 'cache-control': 'max-age=60' }).end(`body ${n}`);
    });
    const gw = await gateway(up.url);
    await get(`${gw.url}/lm`);
    gw.skew.ms = 61_000;
    expect(view(await get(`${gw.url}/lm`))).toEqual([200, 'REVALIDATED', 'body 1']);
    expect(up.seen.map((s) => [s.headers['if-none-match'], s.headers['if-modified-since']])).toEqual([[undefined, undefined], [undefined, LM]]);
  });

  it('stores a 200 to the conditional request in place of the old entry', async () => {
    const up = await upstream((n, _h, res) => res.writeHead(200, { etag: `"e${n}"`, 'cache-control': 'max-age=60' }).end(`body ${n}`));
    const gw = await gateway(up.url);
    await get(`${gw.url}/changed`);
    gw.skew.ms = 61_000;
    expect(view(await get(`${gw.url}/changed`))).toEqual([200, 'MISS', 'body 2']);
    expect(view(await get(`${gw.url}/changed`))).toEqual([200, 'HIT', 'body 2']);
    expect(up.seen.map((s) => s.headers['if-none-match'])).toEqual([undefined, '"e1"']);
  });

  it('never forwards the client\'s validators, and answers its matching If-None-Match 304 from the freshened entry', async () => {
    const up = await etagUpstream();
    const gw = await gateway(up.url);
    await get(`${gw.url}/mine`);
    gw.skew.ms = 61_000;
    const own = await get(`${gw.url}/mine`, { 'if-none-match': '"zz", "e1"', 'if-modified-since': LM });
    expect([own.status, own.headers['x-cache'], own.headers.etag, own.body]).toEqual([304, 'REVALIDATED', '"e1"', '']);
    expect(conditionalsOf(up.seen[1]!)).toEqual({ inm: '"e1"', ims: undefined, im: undefined });
    expect(view(await get(`${gw.url}/mine`))).toEqual([200, 'HIT', 'body 1']);
  });

  it('follows a 304 with another ETag (not about the stored response) by one request without validators', async () => {
    const up = await upstream((n, h, res) => {
      if (h['if-none-match'] !== undefined) res.writeHead(304, { etag: '"not-mine"' }).end();
      else res.writeHead(200, { etag: `"e${n}"`, 'cache-control': 'max-age=60' }).end(`body ${n}`);
    });
    const gw = await gateway(up.url);
    await get(`${gw.url}/other`);
    gw.skew.ms = 61_000;
    expect(view(await get(`${gw.url}/other`))).toEqual([200, 'MISS', 'body 3']);
    expect(up.seen.map((s) => s.headers['if-none-match'])).toEqual([undefined, '"e1"', undefined]);
  });

  it('revalidates in the stale-while-revalidate background refresh: the 304 freshens the entry without a body', async () => {
    const up = await upstream((n, h, res) => {
      if (h['if-none-match'] === '"e1"') res.writeHead(304, { etag: '"e1"', 'cache-control': 'max-age=300' }).end();
      else res.writeHead(200, { etag: '"e1"', 'cache-control': 'max-age=60, stale-while-revalidate=60' }).end(`body ${n}`);
    });
    const gw = await gateway(up.url);
    await get(`${gw.url}/swr`);
    gw.skew.ms = 61_000;
    expect(view(await get(`${gw.url}/swr`))).toEqual([200, 'STALE', 'body 1']);
    // STALE (one refresh at a time) until the 304 has freshened the entry: fresh for 300 s from then
    await until(async () => (await get(`${gw.url}/swr`)).headers['x-cache'] === 'HIT');
    expect(up.seen.map((s) => s.headers['if-none-match'])).toEqual([undefined, '"e1"']);
    gw.skew.ms = 61_000 + 200_000;
    expect(view(await get(`${gw.url}/swr`))).toEqual([200, 'HIT', 'body 1']);
    // the 304 replaced the stale-while-revalidate directive: expired next, it is revalidated in the foreground, on the same connection
    gw.skew.ms = 61_000 + 301_000;
    expect(view(await get(`${gw.url}/swr`))).toEqual([200, 'REVALIDATED', 'body 1']);
    expect(new Set(up.seen.map((s) => s.port)).size).toBe(1);
  });

  it('revalidates when the upstream\'s 304 carries the 200\'s Content-Length and no body: undici\'s length check at its end was a 502, for every request until keep ran out', async () => {
    const up = await contentLength304('max-age=60');
    const gw = await gateway(up.url);
    expect(view(await get(`${gw.url}/cl`))).toEqual([200, 'MISS', 'body 1']);
    for (const skew of [61_000, 200_000, 400_000]) {
      gw.skew.ms = skew;
      expect(view(await get(`${gw.url}/cl`)), String(skew)).toEqual([200, 'REVALIDATED', 'body 1']);
      expect(view(await get(`${gw.url}/cl`)), String(skew)).toEqual([200, 'HIT', 'body 1']);
    }
    // undici closes a connection whose response failed its length check, never reused half-read: one per 304
    expect([up.requests(), up.connections()]).toEqual([4, 3]);
  });

  it('revalidates in the background refresh when the 304 carries a Content-Length', async () => {
    const up = await contentLength304('max-age=60, stale-while-revalidate=60');
    const gw = await gateway(up.url);
    await get(`${gw.url}/swr-cl`);
    gw.skew.ms = 61_000;
    expect(view(await get(`${gw.url}/swr-cl`))).toEqual([200, 'STALE', 'body 1']);
    await until(async () => (await get(`${gw.url}/swr-cl`)).headers['x-cache'] === 'HIT');
    gw.skew.ms = 61_000 + 100_000;
    expect(view(await get(`${gw.url}/swr-cl`))).toEqual([200, 'HIT', 'body 1']);
    expect(up.requests()).toBe(2);
  });

  it('keys GET /x? apart from GET /x, as nginx\'s $request_uri does (the upstream sees different targets)', async () => {
    const up = await upstream((n, _h, res) => res.writeHead(200, { 'cache-control': 'max-age=60' }).end(`body ${n}`));
    const gw = await gateway(up.url);
    const bare = () => rawRequest(gw.url, 'GET /q? HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    const plain = () => rawRequest(gw.url, 'GET /q HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    const xCache = (r: Awaited<ReturnType<typeof bare>>) => r.headerLines.find(([n]) => n === 'x-cache')?.[1];
    expect(xCache(await bare())).toBe('MISS');
    expect(xCache(await plain())).toBe('MISS');
    expect([xCache(await bare()), xCache(await plain())]).toEqual(['HIT', 'HIT']);
    expect(up.seen.map((s) => s.url)).toEqual(['/q?', '/q']);
  });
});

describe.skipIf(!redisUrl())('revalidation with the Redis store', () => {
  const clients: RedisClient[] = [];
  afterEach(() => {
    for (const c of clients.splice(0)) c.disconnect();
  });

  it('freshens the entry in Redis (kept `keep` past its freshness), answers REVALIDATED, and the next request is a HIT', async () => {
    const keyPrefix = `rxgate:test:${randomUUID()}:`;
    const redis = createRedisClient(redisUrl());
    clients.push(redis);
    const up = await etagUpstream();
    const gw = await gateway(up.url, `redis: { url: "${redisUrl()}" }\ncache: { redis: { keyPrefix: "${keyPrefix}" } }`);
    const stored = async (): Promise<string | undefined> => (await redis.keys(`${keyPrefix}*`))[0];
    expect(view(await get(`${gw.url}/r`))).toEqual([200, 'MISS', 'body 1']);
    await until(async () => (await stored()) !== undefined);
    const key = (await stored())!;
    // max-age=60 and 10 minutes kept for revalidation
    expect(await redis.pttl(key)).toBeGreaterThan(600_000);
    const before = (await redis.getBuffer(key))!;
    gw.skew.ms = 61_000;
    expect(view(await get(`${gw.url}/r`))).toEqual([200, 'REVALIDATED', 'body 1']);
    await until(async () => !(await redis.getBuffer(key))!.equals(before));
    gw.skew.ms = 161_000;
    const hit = await get(`${gw.url}/r`);
    expect([...view(hit), hit.headers['cache-control']]).toEqual([200, 'HIT', 'body 1', 'max-age=120']);
    expect(up.seen.map((s) => s.headers['if-none-match'])).toEqual([undefined, '"e1"']);
  });

  it('keeps the vary record as long as the Vary entry it freshens (both PX extended)', async () => {
    const up = await upstream((n, h, res) => {
      if (h['if-none-match'] === '"e1"') res.writeHead(304, { etag: '"e1"', 'cache-control': 'max-age=600' }).end();
      else res.writeHead(200, { etag: '"e1"', 'cache-control': 'max-age=60', vary: 'accept-encoding' }).end(`body ${n}`);
    });
    const keyPrefix = `rxgate:test:${randomUUID()}:`;
    const redis = createRedisClient(redisUrl());
    clients.push(redis);
    const gw = await gateway(up.url, `redis: { url: "${redisUrl()}" }\ncache: { redis: { keyPrefix: "${keyPrefix}" } }`);
    const gz = { 'accept-encoding': 'gzip' };
    const ttls = async (): Promise<number[]> => Promise.all((await redis.keys(`${keyPrefix}*`)).map((k) => redis.pttl(k)));
    expect(view(await get(`${gw.url}/v`, gz))).toEqual([200, 'MISS', 'body 1']);
    await until(async () => (await ttls()).length === 2);
    gw.skew.ms = 5 * 60_000;
    expect(view(await get(`${gw.url}/v`, gz))).toEqual([200, 'REVALIDATED', 'body 1']);
    // both records were kept 60 s + keep (10 min); now the variant and the vary record for 600 s + 10 min
    // (Redis expires by its own clock, which the gateway's skew does not move)
    await until(async () => (await ttls()).every((t) => t > 1_150_000));
    expect(await ttls()).toHaveLength(2);
  });

  it('RedisCacheStore.replace writes only while the key holds the entry stored at the given time (a script, atomically)', async () => {
    const keyPrefix = `rxgate:test:${randomUUID()}:`;
    const redis = createRedisClient(redisUrl());
    clients.push(redis);
    await new Promise((r) => (redis.status === 'ready' ? r(undefined) : redis.once('ready', r)));
    const store = new RedisCacheStore(redis, { keyPrefix });
    const at = (storedAt: number, tag: string): CacheEntry => ({
      kind: 'entry', status: 200, statusText: undefined, headers: ['etag', tag], body: BufferedBody.of(tag), vary: [],
      storedAt, initialAge: 0, freshUntil: storedAt + 1000, staleWhileRevalidate: 0, staleIfError: 0,
    });
    expect(await store.replace('k', at(2, '"b"'), 60_000, 1)).toBe(false);
    await store.set('k', at(1764412345678.25, '"a"'), 60_000);
    expect(await store.replace('k', at(2, '"b"'), 60_000, 1764412345678)).toBe(false);
    expect(await store.replace('k', at(2, '"b"'), 60_000, 1764412345678.25)).toBe(true);
    expect(((await store.get('k')) as CacheEntry).headers).toEqual(['etag', '"b"']);
    expect(await redis.pttl(`${keyPrefix}k`)).toBeGreaterThan(59_000);
  });
});
