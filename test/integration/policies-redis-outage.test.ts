import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { freePort } from '../support/global-setup.ts';
import { startRedisServer, stopRedisServer } from '../support/redis-server.ts';
import { redisUrl } from '../support/redis.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { get as getWithin, type Answer } from '../support/answer.ts';

/** Every request must finish within 3 s: a hang fails it instead of stalling the run. */
const get = (url: string, headers: Record<string, string> = {}): Promise<Answer> => getWithin(url, headers, 3000);

/**
 * A Redis that dies under a running gateway: the rate limit fails open (or
 * refuses with 503 when told to), the cache steps aside as a BYPASS, no
 * request errors or hangs, the metrics count the fallbacks, and everything
 * comes back with Redis. Each test kills a redis-server of its own, never the
 * shared one.
 */

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Starts a redis-server of this test's own on `port`; stopped by PID in afterEach if still running. */
async function ownRedis(port: number): Promise<ChildProcess> {
  const proc = await startRedisServer(port);
  cleanups.push(() => stopRedisServer(proc));
  return proc;
}

async function countingUpstream(): Promise<TestUpstream & { hits: () => number }> {
  let hits = 0;
  const up = await startUpstream((req, res) => {
    req.resume();
    hits++;
    res.end(`body ${hits}`);
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { hits: () => hits });
}

async function gateway(yaml: string): Promise<{ url: string }> {
  // These tests read the public /__rxgate/metrics (opt-in).
  const gw = await startGatewayFromYaml(`metrics: { public: true }\n${yaml}`);
  cleanups.push(() => gw.close());
  return gw;
}

/** `rxgate_degraded_total` by reason, from the gateway's metrics endpoint. */
async function degraded(gwUrl: string): Promise<Record<string, number>> {
  const text = (await get(`${gwUrl}/__rxgate/metrics`)).body;
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^rxgate_degraded_total\{reason="([^"]+)"\} (\d+(?:\.\d+)?)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

const remaining = (a: Answer): number => Number(a.headers['ratelimit-remaining']);

const url = redisUrl();

describe.skipIf(!url)('gateway with a Redis that dies', () => {
  it('keeps answering 200 with the limit failing open and the cache bypassed, counts it, and recovers', async () => {
    const port = await freePort();
    let redis = await ownRedis(port);
    const up = await countingUpstream();
    const gw = await gateway(`
redis: { url: "redis://127.0.0.1:${port}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /catalog/*
    name: catalog-${randomUUID()}
    service: api
    rateLimit: { limit: 1000, window: 1m, store: redis }
    cache: { ttl: 60s, store: redis }
`);
    // The client connects in the background; until then lookups bypass.
    await vi.waitFor(async () => {
      expect((await get(`${gw.url}/catalog/probe-${randomUUID()}`)).headers['x-cache']).toBe('MISS');
    }, { timeout: 5000, interval: 50 });
    const a = await get(`${gw.url}/catalog/a`);
    const b = await get(`${gw.url}/catalog/b`);
    expect([a.headers['x-cache'], b.headers['x-cache']]).toEqual(['MISS', 'MISS']);
    // Counted in Redis: the budget falls from one request to the next (on a
    // loaded machine one check may miss its 200 ms deadline and fall back, so
    // look at two fresh ones until both were counted).
    await vi.waitFor(async () => {
      const first = await get(`${gw.url}/catalog/p-${randomUUID()}`);
      const second = await get(`${gw.url}/catalog/p-${randomUUID()}`);
      expect(remaining(second)).toBeLessThan(remaining(first));
    }, { timeout: 5000, interval: 50 });
    await vi.waitFor(async () => {
      expect((await get(`${gw.url}/catalog/a`)).headers['x-cache']).toBe('HIT');
    }, { timeout: 5000, interval: 20 });
    const before = await degraded(gw.url);

    await stopRedisServer(redis, 'SIGKILL');

    const hitsBefore = up.hits();
    const during: Answer[] = [];
    for (let i = 0; i < 6; i++) during.push(await get(`${gw.url}/catalog/${i % 2 === 0 ? 'a' : 'c'}`));
    expect(during.map((r) => r.status)).toEqual(Array(6).fill(200));
    expect(during.map((r) => r.headers['x-cache'])).toEqual(Array(6).fill('BYPASS'));
    for (const r of during) {
      expect(r.body).toMatch(/^body \d+$/);
      expect(r.headers['ratelimit-limit']).toBe('1000');
    }
    // Even the entry cached before the outage cannot be read: every request went upstream.
    expect(up.hits()).toBe(hitsBefore + 6);

    await vi.waitFor(async () => {
      const now = await degraded(gw.url);
      expect((now.ratelimit_redis_fallback ?? 0) - (before.ratelimit_redis_fallback ?? 0)).toBeGreaterThanOrEqual(6);
      expect((now.cache_store_bypass ?? 0) - (before.cache_store_bypass ?? 0)).toBeGreaterThanOrEqual(6);
      expect(now.redis_error ?? 0).toBeGreaterThanOrEqual(1);
    }, { timeout: 5000, interval: 50 });

    // Redis comes back on the same port (empty): the gateway reconnects by itself.
    redis = await ownRedis(port);
    await vi.waitFor(async () => {
      expect((await get(`${gw.url}/catalog/a`)).headers['x-cache']).not.toBe('BYPASS');
    }, { timeout: 8000, interval: 100 });
    await vi.waitFor(async () => {
      expect((await get(`${gw.url}/catalog/a`)).headers['x-cache']).toBe('HIT');
    }, { timeout: 5000, interval: 20 });
  });

  it('refuses with 503 while Redis is dead when the limit has failOpen: false', async () => {
    const port = await freePort();
    const redis = await ownRedis(port);
    const up = await countingUpstream();
    const gw = await gateway(`
redis: { url: "redis://127.0.0.1:${port}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    name: orders-${randomUUID()}
    service: api
    rateLimit: { limit: 1000, window: 1m, key: { header: x-client }, store: redis, failOpen: false }
`);
    // Until the client is connected every check fails, here as a 503: wait for two counted checks in a row.
    await vi.waitFor(async () => {
      const probe = { 'x-client': randomUUID() };
      const first = await get(`${gw.url}/orders/1`, probe);
      const second = await get(`${gw.url}/orders/1`, probe);
      expect([first.status, second.status]).toEqual([200, 200]);
      expect(remaining(second)).toBe(remaining(first) - 1);
    }, { timeout: 5000, interval: 50 });

    await stopRedisServer(redis, 'SIGKILL');

    const hitsBefore = up.hits();
    for (let i = 0; i < 3; i++) {
      const res = await get(`${gw.url}/orders/1`, { 'x-client': 'c' });
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(JSON.parse(res.body)).toEqual({ error: { code: 'SERVICE_UNAVAILABLE', message: 'rate limiter unavailable' } });
    }
    expect(up.hits()).toBe(hitsBefore);
    expect((await degraded(gw.url)).ratelimit_redis_fallback).toBeGreaterThanOrEqual(3);
  });
});
