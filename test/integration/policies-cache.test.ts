import { createHash, randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PipelineFactory } from '../../lib/config/build.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { redisUrl } from '../support/redis.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * The response cache through real gateways built from YAML: hits, HEAD from a
 * cached GET, a Redis store shared by two gateways, large responses streaming
 * through uncached, and concurrent misses coalesced into one upstream request.
 */

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

type Respond = (res: ServerResponse, n: number) => void | Promise<void>;

/** An upstream counting its requests; `respond` writes the answer (default: `body <n>`). */
async function countingUpstream(respond: Respond = (res, n) => { res.end(`body ${n}`); }): Promise<TestUpstream & { hits: () => number }> {
  let hits = 0;
  const up = await startUpstream((req, res) => {
    req.resume();
    hits++;
    void respond(res, hits);
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { hits: () => hits });
}

async function gateway(yaml: string, pipeline: PipelineFactory = defaultPipeline): Promise<{ url: string }> {
  const gw = await startGatewayFromYaml(yaml, pipeline);
  cleanups.push(() => gw.close());
  return gw;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

async function send(url: string, init: { method?: 'GET' | 'HEAD'; headers?: Record<string, string> } = {}): Promise<Answer> {
  const res = await request(url, { method: init.method ?? 'GET', headers: init.headers ?? {}, headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('response cache from YAML', () => {
  it('answers the second GET from the cache with an age header and goes upstream once', async () => {
    const up = await countingUpstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /catalog/*, service: api, cache: { ttl: 60s } }
`);
    const first = await send(`${gw.url}/catalog/1`);
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.body.toString()).toBe('body 1');

    const second = await send(`${gw.url}/catalog/1`);
    expect(second.status).toBe(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.headers.age).toMatch(/^\d+$/);
    expect(second.body.toString()).toBe('body 1');

    const head = await send(`${gw.url}/catalog/1`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['x-cache']).toBe('HIT');
    expect(head.body.length).toBe(0);

    // Another URL is another entry.
    expect((await send(`${gw.url}/catalog/2`)).headers['x-cache']).toBe('MISS');
    expect(up.hits()).toBe(2);
  });

  it.each([
    ['with a content-length', true],
    ['chunked', false],
  ])('streams a response larger than maxEntrySize through intact and uncached (%s)', async (_name, withLength) => {
    const chunk = Buffer.alloc(16 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + 7) & 0xff;
    const whole = Buffer.concat([chunk, chunk, chunk, chunk]); // 64 KiB
    const up = await countingUpstream((res) => {
      if (withLength) res.setHeader('content-length', whole.length);
      for (let i = 0; i < 4; i++) res.write(chunk);
      res.end();
    });
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /files/*, service: api, cache: { ttl: 60s, maxEntrySize: 4096 } }
`);
    for (let i = 0; i < 2; i++) {
      const res = await send(`${gw.url}/files/big`);
      expect(res.status).toBe(200);
      expect(res.headers['x-cache']).toBe('MISS');
      expect(res.body.length).toBe(whole.length);
      expect(sha256(res.body)).toBe(sha256(whole));
    }
    expect(up.hits()).toBe(2);
  });

  it('coalesces concurrent misses for one URL into one upstream request', async () => {
    const N = 5;
    let release!: () => void;
    const released = new Promise<void>((resolve) => { release = resolve; });
    const up = await countingUpstream(async (res) => {
      await released;
      res.end('shared answer');
    });
    // The gateway-side signal: how many requests have reached the route's pipeline.
    let arrived = 0;
    const counting: PipelineFactory = (ctx) => {
      const handler = defaultPipeline(ctx);
      return (req) => {
        arrived++;
        return handler(req);
      };
    };
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /catalog/*, service: api, cache: { ttl: 60s } }
`, counting);

    const answers = Array.from({ length: N }, () => send(`${gw.url}/catalog/hot`));
    await vi.waitFor(() => {
      expect(arrived).toBe(N);
      expect(up.hits()).toBe(1);
    }, { timeout: 5000, interval: 10 });
    release();
    const done = await Promise.all(answers);

    expect(done.map((a) => a.status)).toEqual(Array(N).fill(200));
    expect(done.map((a) => a.body.toString())).toEqual(Array(N).fill('shared answer'));
    expect(done.map((a) => a.headers['x-cache']).sort()).toEqual(['HIT', 'HIT', 'HIT', 'HIT', 'MISS']);
    expect(up.hits()).toBe(1);
  });

  it('keeps the entries of two routes apart when their rewrites give the same upstream path', async () => {
    const a = await countingUpstream((res) => { res.end('from service a'); });
    const b = await countingUpstream((res) => { res.end('from service b'); });
    const gw = await gateway(`
services:
  a: { upstreams: ["${a.url}"] }
  b: { upstreams: ["${b.url}"] }
routes:
  - { path: /v1/*, service: a, rewrite: { stripPrefix: /v1 }, cache: { ttl: 60s } }
  - { path: /v2/*, service: b, rewrite: { stripPrefix: /v2 }, cache: { ttl: 60s } }
`);
    expect((await send(`${gw.url}/v1/items`)).body.toString()).toBe('from service a');
    const other = await send(`${gw.url}/v2/items`);
    expect(other.body.toString()).toBe('from service b');
    expect(other.headers['x-cache']).toBe('MISS');
    expect(b.hits()).toBe(1);
  });

  it('does not serve one user\'s response to another when auth strips the authorization header', async () => {
    const SECRET = 'integration-secret-at-least-32-bytes-long!';
    const up = await startUpstream((req, res) => {
      req.resume();
      res.end(`hello ${String(req.headers['x-user-id'])}`);
    });
    cleanups.push(() => up.close());
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /me
    service: api
    auth: { secret: "${SECRET}", stripAuthorization: true, forwardClaims: { sub: x-user-id } }
    cache: { ttl: 60s }
`);
    const key = new TextEncoder().encode(SECRET);
    const as = async (sub: string): Promise<Answer> => send(`${gw.url}/me`, {
      headers: { authorization: `Bearer ${await new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(key)}` },
    });
    expect((await as('alice')).body.toString()).toBe('hello alice');
    const bob = await as('bob');
    expect(bob.body.toString()).toBe('hello bob');
    // Without cacheAuthorized, an authenticated request is never looked up.
    expect(bob.headers['x-cache']).toBe('BYPASS');
  });
});

const url = redisUrl();

describe.skipIf(!url)('response cache in Redis shared by two gateways', () => {
  it('answers on one gateway from the entry the other stored', async () => {
    const prefix = `test:policies-cache:${randomUUID()}:`;
    const redis = new Redis(url, { lazyConnect: true });
    await redis.connect();
    cleanups.push(async () => { redis.disconnect(); });

    const up = await countingUpstream((res, n) => {
      res.setHeader('content-type', 'text/plain');
      res.end(`body ${n}`);
    });
    const yaml = `
redis: { url: "${url}" }
cache:
  redis: { keyPrefix: "${prefix}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /catalog/*, service: api, cache: { ttl: 60s, store: redis } }
`;
    const one = await gateway(yaml);
    const two = await gateway(yaml);
    // Without an offline queue, lookups before the client is connected bypass the cache.
    for (const gw of [one, two]) {
      await vi.waitFor(async () => {
        expect((await send(`${gw.url}/catalog/probe-${randomUUID()}`)).headers['x-cache']).toBe('MISS');
      }, { timeout: 5000, interval: 50 });
    }
    const before = up.hits();
    // Both gateways see the same Host, as behind one load balancer: the same cache key.
    const host = { host: 'shop.test' };

    const miss = await send(`${one.url}/catalog/item`, { headers: host });
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.body.toString()).toBe(`body ${before + 1}`);
    // The write is not awaited by the request: wait until it has landed.
    await vi.waitFor(async () => {
      expect(await redis.keys(`${prefix}*item*`)).toHaveLength(1);
    }, { timeout: 5000, interval: 20 });

    const hit = await send(`${two.url}/catalog/item`, { headers: host });
    expect(hit.status).toBe(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers.age).toMatch(/^\d+$/);
    expect(hit.headers['content-type']).toBe('text/plain');
    expect(hit.body.toString()).toBe(`body ${before + 1}`);
    expect(up.hits()).toBe(before + 1);
  });
});
