import { firstValueFrom, of, VirtualTimeScheduler, type Observable } from 'rxjs';
import { describe, expect, it, vi } from 'vitest';
import { isGatewayError, ServiceUnavailableError, type GatewayError } from '../../lib/errors.ts';
import { rateLimit, type RateLimitOptions } from '../../lib/stages/rate-limit/rate-limit.ts';
import { gcraRule } from '../../lib/stages/rate-limit/gcra.ts';
import type { RateLimitStore } from '../../lib/stages/rate-limit/store.ts';
import { Cluster, Redis } from 'ioredis';
import { MemoryRateLimitStore } from '../../lib/stages/rate-limit/memory-store.ts';
import { createRedisClient, parseRedisUrl, redisReady, type RedisClient } from '../../lib/resources/redis-client.ts';
import { RedisRateLimitStore } from '../../lib/stages/rate-limit/redis-store.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { callNow, gatewayRequest } from '../support/request.ts';

const OK: GatewayResponse = { status: 200, headers: ['content-type', 'text/plain'], body: null };

function request(init: { ip?: string; headers?: Record<string, string>; claims?: Record<string, unknown> } = {}): GatewayRequest {
  const locals = init.claims === undefined ? {} : { claims: init.claims };
  return gatewayRequest({ id: 'r', headers: init.headers ?? {}, remoteAddress: init.ip ?? '10.0.0.1', locals });
}

function fakeClock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

/** Runs a request synchronously (memory store): the response, or the error. */
function call(handler: Handler, req: GatewayRequest = request()): GatewayResponse | GatewayError {
  return callNow(handler, req);
}

function header(res: GatewayResponse, name: string): string | undefined {
  const i = res.headers.indexOf(name);
  return i === -1 ? undefined : res.headers[i + 1];
}

function limited(options: RateLimitOptions, clock = fakeClock()) {
  const next = vi.fn((_req: GatewayRequest): Observable<GatewayResponse> => of(OK));
  const handler = rateLimit({ store: new MemoryRateLimitStore({ clock }), ...options })(next);
  return { handler, next, clock };
}

function admitted(out: GatewayResponse | GatewayError): boolean {
  return !isGatewayError(out);
}

describe('rateLimit with the memory store', () => {
  it('admits limit requests back to back, then refuses with 429 RATE_LIMITED', () => {
    const { handler, next } = limited({ limit: 3, window: '1s' });
    const outs = [call(handler), call(handler), call(handler), call(handler)];
    expect(outs.map(admitted)).toEqual([true, true, true, false]);
    const err = outs[3] as GatewayError;
    expect(err.status).toBe(429);
    expect(err.code).toBe('RATE_LIMITED');
    expect(next).toHaveBeenCalledTimes(3);
  });

  it('puts ratelimit headers on admitted responses, counting remaining down', () => {
    const { handler } = limited({ limit: 3, window: '30s' });
    const res = [call(handler), call(handler)] as GatewayResponse[];
    expect(res[0]!.headers).toEqual(['content-type', 'text/plain', 'ratelimit-limit', '3', 'ratelimit-remaining', '2', 'ratelimit-reset', '10']);
    expect(header(res[1]!, 'ratelimit-remaining')).toBe('1');
    expect(header(res[1]!, 'ratelimit-reset')).toBe('20');
  });

  it('does not change the upstream response object it was given', () => {
    const { handler } = limited({ limit: 3 });
    call(handler);
    expect(OK.headers).toEqual(['content-type', 'text/plain']);
  });

  it('gives the 429 retry-after and ratelimit headers', () => {
    const { handler } = limited({ limit: 2, window: '10s' });
    call(handler);
    call(handler);
    const err = call(handler) as GatewayError;
    expect(err.headers).toEqual({ 'retry-after': '5', 'ratelimit-limit': '2', 'ratelimit-remaining': '0', 'ratelimit-reset': '10' });
  });

  it('admits again once retry-after has passed, not before', () => {
    const { handler, clock } = limited({ limit: 2, window: '10s' });
    call(handler);
    call(handler);
    clock.advance(4_999);
    expect(admitted(call(handler))).toBe(false);
    clock.advance(1);
    expect(admitted(call(handler))).toBe(true);
    expect(admitted(call(handler))).toBe(false);
  });

  it('sustains one request per window/limit once the burst is spent', () => {
    const { handler, clock } = limited({ limit: 10, window: '1s' });
    for (let i = 0; i < 10; i++) call(handler);
    const decisions: boolean[] = [];
    for (let i = 0; i < 20; i++) {
      clock.advance(50);
      decisions.push(admitted(call(handler)));
    }
    expect(decisions).toEqual(Array.from({ length: 20 }, (_, i) => i % 2 === 1));
  });

  it('with burst 1 spaces requests evenly across the window', () => {
    const { handler, clock } = limited({ limit: 4, window: '1s', burst: 1 });
    expect([call(handler), call(handler)].map(admitted)).toEqual([true, false]);
    clock.advance(250);
    expect([call(handler), call(handler)].map(admitted)).toEqual([true, false]);
  });

  it('keeps the upstream error when admitted', async () => {
    const boom = new ServiceUnavailableError('down');
    const handler = rateLimit({ limit: 1 })(() => { throw boom; });
    expect(call(handler)).toBe(boom);
  });

  it('records the decision at req.locals.rateLimit', () => {
    const { handler } = limited({ limit: 5 });
    const req = request();
    call(handler, req);
    expect(req.locals.rateLimit).toMatchObject({ allowed: true, limit: 5, remaining: 4 });
  });

  it('leaves headers off admitted responses when headers is false', () => {
    const { handler } = limited({ limit: 5, headers: false });
    expect((call(handler) as GatewayResponse).headers).toEqual(OK.headers);
  });

  it('keeps the tighter headers when two limits wrap the same route', () => {
    const store = new MemoryRateLimitStore({ clock: fakeClock() });
    const inner = rateLimit({ store, id: 'inner', limit: 2 });
    const outer = rateLimit({ store, id: 'outer', limit: 100 });
    const handler = outer(inner(() => of(OK)));
    const res = call(handler) as GatewayResponse;
    expect(res.headers.filter((h) => h.startsWith('ratelimit-'))).toHaveLength(3);
    expect(header(res, 'ratelimit-limit')).toBe('2');
    expect(header(res, 'ratelimit-remaining')).toBe('1');
  });

  it('does nothing until subscribed', () => {
    const store: RateLimitStore = { consume: vi.fn(() => ({ allowed: true, limit: 1, remaining: 0, resetMs: 0, retryAfterMs: 0 })) };
    rateLimit({ store })(() => of(OK))(request());
    expect(store.consume).not.toHaveBeenCalled();
  });
});

describe('rateLimit keys', () => {
  it('counts each client IP separately by default', () => {
    const { handler } = limited({ limit: 1 });
    expect(admitted(call(handler, request({ ip: '10.0.0.1' })))).toBe(true);
    expect(admitted(call(handler, request({ ip: '10.0.0.2' })))).toBe(true);
    expect(admitted(call(handler, request({ ip: '10.0.0.1' })))).toBe(false);
  });

  it('counts everyone together with key route', () => {
    const { handler } = limited({ limit: 1, key: 'route' });
    call(handler, request({ ip: '10.0.0.1' }));
    expect(admitted(call(handler, request({ ip: '10.0.0.2' })))).toBe(false);
  });

  it('counts by a JWT claim, across IPs', () => {
    const { handler } = limited({ limit: 1, key: { claim: 'sub' } });
    expect(admitted(call(handler, request({ ip: '1.1.1.1', claims: { sub: 'alice' } })))).toBe(true);
    expect(admitted(call(handler, request({ ip: '2.2.2.2', claims: { sub: 'bob' } })))).toBe(true);
    expect(admitted(call(handler, request({ ip: '3.3.3.3', claims: { sub: 'alice' } })))).toBe(false);
  });

  it('falls back to the client IP when the claim is missing', () => {
    const { handler } = limited({ limit: 1, key: { claim: 'sub' } });
    expect(admitted(call(handler, request({ ip: '1.1.1.1' })))).toBe(true);
    expect(admitted(call(handler, request({ ip: '1.1.1.1', claims: {} })))).toBe(false);
    expect(admitted(call(handler, request({ ip: '1.1.1.1', claims: { sub: 'alice' } })))).toBe(true);
  });

  it('counts by a header, case-insensitively named', () => {
    const { handler } = limited({ limit: 1, key: { header: 'X-Api-Key' } });
    expect(admitted(call(handler, request({ ip: '1.1.1.1', headers: { 'x-api-key': 'k1' } })))).toBe(true);
    expect(admitted(call(handler, request({ ip: '2.2.2.2', headers: { 'x-api-key': 'k1' } })))).toBe(false);
    expect(admitted(call(handler, request({ ip: '2.2.2.2', headers: { 'x-api-key': 'k2' } })))).toBe(true);
  });

  it('hashes very long key values into short store keys', () => {
    const consume = vi.fn((_key: string) => ({ allowed: true, limit: 1, remaining: 0, resetMs: 0, retryAfterMs: 0 }));
    const handler = rateLimit({ store: { consume }, key: { header: 'x-api-key' } })(() => of(OK));
    call(handler, request({ headers: { 'x-api-key': 'k'.repeat(10_000) } }));
    expect(consume.mock.calls[0]![0].length).toBeLessThan(100);
  });

  it('counts by what a key function returns, and by IP when it returns undefined', () => {
    const { handler } = limited({ limit: 1, key: (req) => req.headers.tenant });
    expect(admitted(call(handler, request({ ip: '1.1.1.1', headers: { tenant: 't' } })))).toBe(true);
    expect(admitted(call(handler, request({ ip: '2.2.2.2', headers: { tenant: 't' } })))).toBe(false);
    expect(admitted(call(handler, request({ ip: '2.2.2.2' })))).toBe(true);
  });

  it('keeps stages with different ids apart in a shared store, and together with the same id', () => {
    const store = new MemoryRateLimitStore({ clock: fakeClock() });
    const a = rateLimit({ store, id: 'a', limit: 1 })(() => of(OK));
    const b = rateLimit({ store, id: 'b', limit: 1 })(() => of(OK));
    const a2 = rateLimit({ store, id: 'a', limit: 1 })(() => of(OK));
    expect([call(a), call(b), call(a2)].map(admitted)).toEqual([true, true, false]);
  });
});

describe('rateLimit with an asynchronous store', () => {
  it('waits for a store that answers with a Promise', async () => {
    const memory = new MemoryRateLimitStore({ clock: fakeClock() });
    const store: RateLimitStore = { consume: (key, rule) => Promise.resolve(memory.consume(key, rule)) };
    const handler = rateLimit({ store, limit: 1 })(() => of(OK));
    const res = await firstValueFrom(handler(request()));
    expect(header(res, 'ratelimit-remaining')).toBe('0');
    await expect(firstValueFrom(handler(request()))).rejects.toMatchObject({ status: 429 });
  });

  it('passes on a store failure as the error', async () => {
    const store: RateLimitStore = { consume: () => Promise.reject(new ServiceUnavailableError('rate limiter unavailable')) };
    const next = vi.fn(() => of(OK));
    await expect(firstValueFrom(rateLimit({ store })(next)(request()))).rejects.toMatchObject({ status: 503 });
    expect(next).not.toHaveBeenCalled();
  });
});

describe('rateLimit configuration', () => {
  it.each<[string, RateLimitOptions]>([
    ['a zero limit', { limit: 0 }],
    ['a fractional limit', { limit: 1.5 }],
    ['a zero burst', { burst: 0 }],
    ['a bad window', { window: 'soon' }],
    ['a zero window', { window: 0 }],
    ['an unknown key', { key: 'user' as never }],
    ['an empty claim key', { key: { claim: '' } }],
  ])('throws TypeError for %s', (_, options) => {
    expect(() => rateLimit(options)).toThrow(TypeError);
  });
});

describe('rateLimit on a virtual runtime', () => {
  /** Moves `vts` (and so the runtime's clock) forward by `ms`, running the work due. */
  function advance(vts: VirtualTimeScheduler, ms: number): void {
    vts.schedule(() => {}, ms);
    vts.maxFrames = vts.now() + ms; // run what is due by then, nothing later
    vts.flush();
    vts.maxFrames = Infinity;
  }

  it('refills the bucket of its default store as virtual time advances', () => {
    const vts = new VirtualTimeScheduler();
    const handler = rateLimit({ limit: 2, window: '1s', runtime: virtualRuntime(vts) })(() => of(OK));
    expect([call(handler), call(handler), call(handler)].map(admitted)).toEqual([true, true, false]);
    advance(vts, 499);
    expect(admitted(call(handler))).toBe(false);
    advance(vts, 1);
    expect(admitted(call(handler))).toBe(true);
    expect(admitted(call(handler))).toBe(false);
  });

  it('gives a memory store the clock of the runtime unless it has a clock of its own', () => {
    const vts = new VirtualTimeScheduler();
    const rule = gcraRule(1, 1000);
    const onRuntime = new MemoryRateLimitStore({ runtime: virtualRuntime(vts) });
    const clock = fakeClock();
    const ownClock = new MemoryRateLimitStore({ runtime: virtualRuntime(vts), clock });
    expect([onRuntime.consume('k', rule).allowed, ownClock.consume('k', rule).allowed]).toEqual([true, true]);
    advance(vts, 1000);
    expect([onRuntime.consume('k', rule).allowed, ownClock.consume('k', rule).allowed]).toEqual([true, false]);
    clock.advance(1000);
    expect(ownClock.consume('k', rule).allowed).toBe(true);
  });

  it('falls back when Redis has not answered by the timeout on the scheduler of the runtime', async () => {
    const vts = new VirtualTimeScheduler();
    const silent = { defineCommand() {}, rxgateGcra: () => new Promise(() => {}) } as unknown as RedisClient;
    const onFallback = vi.fn();
    const logger = { warn: vi.fn(), info: vi.fn() };
    const store = new RedisRateLimitStore({ client: silent, timeout: '200ms', runtime: virtualRuntime(vts), onFallback, logger });
    const result = store.consume('k', gcraRule(5, 1000));
    advance(vts, 199);
    await new Promise((r) => setImmediate(r)); // every microtask so far has run
    expect(onFallback).not.toHaveBeenCalled();
    advance(vts, 1);
    await new Promise((r) => setImmediate(r));
    expect(onFallback).toHaveBeenCalledTimes(1);
    expect((await result).allowed).toBe(true);
    expect(store.fallbacks).toBe(1);
  });

  it('gives up waiting for a Redis client to be ready by the timeout on the scheduler of the runtime', async () => {
    const vts = new VirtualTimeScheduler();
    const never = { status: 'connecting', once() {}, off() {} } as unknown as RedisClient;
    let settled = false;
    const ready = redisReady(never, '3s', virtualRuntime(vts));
    ready.then(() => (settled = true), () => (settled = true));
    advance(vts, 2999);
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    advance(vts, 1);
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(true);
    await expect(ready).rejects.toThrow(/not ready within 3000ms/);
  });
});

describe('MemoryRateLimitStore', () => {
  it('forgets keys whose bucket has refilled', () => {
    const clock = fakeClock();
    const store = new MemoryRateLimitStore({ clock });
    const rule = gcraRule(10, 1000);
    for (let i = 0; i < 5; i++) store.consume(`k${i}`, rule);
    expect(store.size).toBe(5);
    clock.advance(1000);
    for (let i = 0; i < 3; i++) store.consume('fresh', rule);
    expect(store.size).toBeLessThan(5);
  });

  it('never holds more than maxKeys keys', () => {
    const store = new MemoryRateLimitStore({ clock: fakeClock(), maxKeys: 3 });
    for (let i = 0; i < 10; i++) store.consume(`k${i}`, gcraRule(1, 60_000));
    expect(store.size).toBe(3);
  });

  it('rounds the per-request cost up so a limit that does not divide the window is never exceeded', () => {
    const clock = fakeClock();
    const store = new MemoryRateLimitStore({ clock });
    const rule = gcraRule(3, 1000);
    const admittedCount = [0, 1, 2, 3].filter(() => store.consume('k', rule).allowed).length;
    expect(admittedCount).toBe(3);
    clock.advance(333);
    expect(store.consume('k', rule).allowed).toBe(false);
    clock.advance(1);
    expect(store.consume('k', rule).allowed).toBe(true);
  });
});

describe('Redis URLs', () => {
  it('passes redis:// and rediss:// URLs through to ioredis', () => {
    expect(parseRedisUrl('rediss://u:p@cache.internal:6380/2')).toEqual({ kind: 'standalone', url: 'rediss://u:p@cache.internal:6380/2' });
  });

  it('reads a cluster URL with several nodes, credentials and TLS', () => {
    expect(parseRedisUrl('rediss+cluster://u:p%40ss@h1:7000,h2,[::1]:7002')).toEqual({
      kind: 'cluster', tls: true, username: 'u', password: 'p@ss',
      nodes: [{ host: 'h1', port: 7000 }, { host: 'h2', port: 6379 }, { host: '::1', port: 7002 }],
    });
  });

  it('reads a sentinel URL with the master name, database and sentinel password', () => {
    expect(parseRedisUrl('redis+sentinel://:secret@s1:26379,s2/mymaster/3?sentinelPassword=sp')).toEqual({
      kind: 'sentinel', tls: false, password: 'secret', sentinelPassword: 'sp', name: 'mymaster', db: 3,
      sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }],
    });
  });

  it.each([
    ['an unknown scheme', 'memcached://h:1'],
    ['a sentinel URL without a master name', 'redis+sentinel://s1:26379'],
    ['a cluster URL with a database', 'redis+cluster://h1:7000/2'],
    ['a bad port', 'redis+cluster://h1:99999'],
  ])('throws TypeError for %s', (_, url) => {
    expect(() => parseRedisUrl(url)).toThrow(TypeError);
  });

  it('does not show the password of a URL it refuses', () => {
    expect(() => parseRedisUrl('redis+cluster://u:hunter2@h1:99999')).toThrow(/^(?!.*hunter2)/);
    expect(() => parseRedisUrl('memcached://u:hunter2@h')).toThrow(/\*\*\*/);
  });

  it.each([
    ['redis://127.0.0.1:1', Redis],
    ['redis+sentinel://127.0.0.1:1/mymaster', Redis],
    ['redis+cluster://127.0.0.1:1,127.0.0.1:2', Cluster],
  ] as const)('builds a client for %s that fails commands at once while it is not connected', async (url, type) => {
    const client = createRedisClient(url);
    try {
      expect(client).toBeInstanceOf(type);
      await expect(client.get('k')).rejects.toThrow(/enableOfflineQueue/);
    } finally {
      client.disconnect();
    }
  });
});

describe('the memory store\'s sweep (review RM, M1)', () => {
  it('sweeps a refilled key that the sweep stepped past as the only one held', () => {
    let t = 1_000;
    const store = new MemoryRateLimitStore({ clock: { now: () => t }, maxKeys: 8 });
    const one = gcraRule(1, 1000);
    store.consume('a', one);
    store.consume('b', one); // [a, b]
    t += 1000;
    store.consume('b', one); // a swept; b, the key checked and the last admitted, stepped past and updated in place
    t += 1000;
    store.consume('c', one); // b has refilled: swept, as before 1a96089's live iterator
    expect(store.size).toBe(1);
  });
});
