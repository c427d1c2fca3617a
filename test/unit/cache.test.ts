import { Observable, Subject, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry, CacheRecord, CacheStore } from '../../lib/stages/cache/entry.ts';
import { BadGatewayError, BadRequestError } from '../../lib/errors.ts';
import { getHeader } from '../../lib/headers.ts';
import { cache, type CacheOptions } from '../../lib/stages/cache/cache.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { pack, unpack } from '../../lib/stages/cache/packed.ts';
import { CacheStoreTimeoutError, RedisCacheStore } from '../../lib/stages/cache/redis-store.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import type { Body, BodySink, GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest, respond } from '../support/request.ts';

class FakeClock {
  constructor(public t = 1_000_000) {}
  now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

function request(over: Partial<GatewayRequest> = {}): GatewayRequest {
  return gatewayRequest({ path: '/items', headers: { host: 'api.test' }, ...over });
}

interface Reply {
  status?: number;
  headers?: string[];
  body?: string | null;
}

/** A fake upstream: answers each request with `reply(req, n)` (n counts calls from 1). */
function upstream(reply: (req: GatewayRequest, n: number) => Reply | Error = (_req, n) => ({ body: `v${n}` })) {
  const fake = {
    calls: 0,
    methods: [] as string[],
    handler: ((req: GatewayRequest) =>
      new Observable<GatewayResponse>((s) => {
        fake.calls++;
        fake.methods.push(req.method);
        const r = reply(req, fake.calls);
        if (r instanceof Error) {
          s.error(r);
          return;
        }
        const body = r.body === undefined ? 'body' : r.body;
        s.next({ status: r.status ?? 200, headers: r.headers ?? [], body: body === null ? null : BufferedBody.of(body) });
        s.complete();
      })) as Handler,
  };
  return fake;
}

interface Result {
  status: number;
  headers: string[];
  body: string | null;
  xCache: string | undefined;
  age: string | undefined;
}

async function send(h: Handler, req: GatewayRequest = request()): Promise<Result> {
  const { response: r, body: b } = await respond(h, req);
  return {
    status: r.status, headers: r.headers, body: b === null ? null : b.toString(),
    xCache: getHeader(r.headers, 'x-cache'), age: getHeader(r.headers, 'age'),
  };
}

function setup(options: CacheOptions = {}, reply?: Parameters<typeof upstream>[0]) {
  const clock = new FakeClock();
  const up = upstream(reply);
  const handler = cache({ clock, ...options })(up.handler);
  return { clock, up, handler };
}

/** A body the test feeds chunk by chunk; length unknown (chunked). */
class PushBody implements Body {
  readonly length = null;
  private sink: BodySink | null = null;
  destroyed = false;
  pipe(sink: BodySink): void {
    this.sink = sink;
  }
  resume(): void {}
  destroy(): void {
    this.destroyed = true;
    this.sink = null;
  }
  push(data: string | Uint8Array): void {
    this.sink!.write(typeof data === 'string' ? Buffer.from(data) : data);
  }
  end(): void {
    this.sink!.end();
  }
}

describe('cache', () => {
  it('answers a repeated GET from the cache with x-cache HIT and the seconds held as Age', async () => {
    const { clock, up, handler } = setup();
    const first = await send(handler);
    clock.advance(5_400);
    const second = await send(handler);
    expect(first).toMatchObject({ status: 200, body: 'v1', xCache: 'MISS', age: undefined });
    expect(second).toMatchObject({ status: 200, body: 'v1', xCache: 'HIT', age: '5' });
    expect(up.calls).toBe(1);
  });

  it('adds the upstream Age to the time held and does not replay the stored age header', async () => {
    const { clock, handler } = setup({}, () => ({ headers: ['cache-control', 'max-age=100', 'age', '10'] }));
    await send(handler);
    clock.advance(3_000);
    const hit = await send(handler);
    expect(hit.age).toBe('13');
    expect(hit.headers.filter((h) => h === 'age')).toHaveLength(1);
  });

  it('answers a memory hit synchronously within subscribe', () => {
    const { handler } = setup();
    handler(request()).subscribe({ next: (r) => r.body?.pipe({ write: () => true, end: () => {} }) });
    let status: string | undefined;
    handler(request()).subscribe((r) => {
      status = getHeader(r.headers, 'x-cache');
    });
    expect(status).toBe('HIT');
  });

  it('gives every hit its own header list and body, so a stage that edits one response changes no later hit', async () => {
    // The memory store hands out one decoded entry for all hits of a record: replay must copy.
    const { handler } = setup({}, () => ({ headers: ['cache-control', 'max-age=100', 'x-a', '1'], body: 'payload' }));
    await send(handler);
    const first = await send(handler);
    first.headers.push('x-added', 'yes');
    first.headers[first.headers.indexOf('x-a') + 1] = 'changed';
    const second = await send(handler);
    const third = await send(handler);
    for (const hit of [second, third]) {
      expect(hit).toMatchObject({ xCache: 'HIT', body: 'payload' });
      expect(getHeader(hit.headers, 'x-a')).toBe('1');
      expect(getHeader(hit.headers, 'x-added')).toBeUndefined();
    }
  });

  it('answers a HEAD from a cached GET without a body or an upstream call', async () => {
    const { up, handler } = setup();
    await send(handler);
    const head = await send(handler, request({ method: 'HEAD' }));
    expect(head).toMatchObject({ status: 200, body: null, xCache: 'HIT' });
    expect(up.calls).toBe(1);
  });

  it('sends a HEAD miss upstream as a HEAD and stores nothing', async () => {
    const { up, handler } = setup({}, () => ({ body: null }));
    const head = await send(handler, request({ method: 'HEAD' }));
    const get = await send(handler);
    expect(head.xCache).toBe('MISS');
    expect(get.xCache).toBe('MISS');
    expect(up.methods).toEqual(['HEAD', 'GET']);
  });

  it('treats query strings that differ only in parameter order as one key', async () => {
    const { up, handler } = setup();
    await send(handler, request({ query: 'b=2&a=1' }));
    const hit = await send(handler, request({ query: 'a=1&b=2' }));
    const other = await send(handler, request({ query: 'a=1' }));
    expect(hit.xCache).toBe('HIT');
    expect(other.xCache).toBe('MISS');
    expect(up.calls).toBe(2);
  });

  it('keeps one variant per value of the request headers named in Vary', async () => {
    const { up, handler } = setup({}, (req) => ({
      headers: ['vary', 'Accept-Language'], body: `hello ${req.headers['accept-language']}`,
    }));
    const en = () => request({ headers: { host: 'api.test', 'accept-language': 'en' } });
    const fr = () => request({ headers: { host: 'api.test', 'accept-language': 'fr' } });
    expect((await send(handler, en())).xCache).toBe('MISS');
    expect((await send(handler, fr())).xCache).toBe('MISS');
    const enHit = await send(handler, en());
    const frHit = await send(handler, fr());
    expect(enHit).toMatchObject({ xCache: 'HIT', body: 'hello en' });
    expect(frHit).toMatchObject({ xCache: 'HIT', body: 'hello fr' });
    expect(up.calls).toBe(2);
  });

  it.each([
    ['Vary: *', ['vary', '*']],
    ['Cache-Control: no-store', ['cache-control', 'no-store']],
    ['Cache-Control: private', ['cache-control', 'private, max-age=60']],
    ['Cache-Control: no-cache', ['cache-control', 'no-cache']],
    ['Set-Cookie', ['set-cookie', 'sid=1']],
    ['max-age=0', ['cache-control', 'max-age=0']],
  ])('does not store a response with %s', async (_name, headers) => {
    const { up, handler } = setup({}, () => ({ headers }));
    await send(handler);
    const again = await send(handler);
    expect(again.xCache).toBe('MISS');
    expect(up.calls).toBe(2);
  });

  it('does not store statuses outside the list and stores those in it', async () => {
    const { up, handler } = setup({ statuses: [200, 404] }, (_r, n) => ({ status: n <= 2 ? 500 : 404 }));
    await send(handler);
    await send(handler);
    await send(handler);
    const hit = await send(handler);
    expect(hit).toMatchObject({ status: 404, xCache: 'HIT' });
    expect(up.calls).toBe(3);
  });

  it('bypasses the cache for requests with Authorization unless cacheAuthorized is set', async () => {
    const authed = () => request({ headers: { host: 'api.test', authorization: 'Bearer x' } });
    const plain = setup();
    const a = await send(plain.handler, authed());
    const b = await send(plain.handler, authed());
    expect([a.xCache, b.xCache]).toEqual(['BYPASS', 'BYPASS']);
    expect(plain.up.calls).toBe(2);

    const allowed = setup({ cacheAuthorized: true });
    await send(allowed.handler, authed());
    expect((await send(allowed.handler, authed())).xCache).toBe('HIT');
  });

  it('skips the lookup for a client no-cache but stores the fresh answer', async () => {
    const { up, handler } = setup();
    await send(handler);
    const refreshed = await send(handler, request({ headers: { host: 'api.test', 'cache-control': 'no-cache' } }));
    const after = await send(handler);
    expect(refreshed).toMatchObject({ xCache: 'BYPASS', body: 'v2' });
    expect(after).toMatchObject({ xCache: 'HIT', body: 'v2' });
    expect(up.calls).toBe(2);
  });

  it('neither looks up nor stores for a client no-store', async () => {
    const { up, handler } = setup();
    const noStore = await send(handler, request({ headers: { host: 'api.test', 'cache-control': 'no-store' } }));
    const after = await send(handler);
    expect(noStore.xCache).toBe('BYPASS');
    expect(after.xCache).toBe('MISS');
    expect(up.calls).toBe(2);
  });

  it('tags other methods BYPASS and never stores them', async () => {
    const { up, handler } = setup();
    const post = await send(handler, request({ method: 'POST' }));
    await send(handler, request({ method: 'POST' }));
    expect(post.xCache).toBe('BYPASS');
    expect(up.calls).toBe(2);
  });

  it('streams a response whose content-length exceeds maxEntrySize through uncached', async () => {
    const big = 'x'.repeat(100);
    const { up, handler } = setup({ maxEntrySize: 64 }, () => ({ body: big }));
    const first = await send(handler);
    const second = await send(handler);
    expect(first).toMatchObject({ body: big, xCache: 'MISS' });
    expect(second.xCache).toBe('MISS');
    expect(up.calls).toBe(2);
  });

  it('drops the copy of a chunked response once it grows past maxEntrySize while the client still gets all of it', async () => {
    const clock = new FakeClock();
    const bodies: PushBody[] = [];
    let calls = 0;
    const next: Handler = () =>
      new Observable((s) => {
        calls++;
        const body = new PushBody();
        bodies.push(body);
        s.next({ status: 200, headers: [], body });
        s.complete();
      });
    const handler = cache({ clock, maxEntrySize: 10 })(next);
    const got = send(handler);
    await Promise.resolve();
    bodies[0]!.push('123456');
    bodies[0]!.push('789012');
    bodies[0]!.push('345');
    bodies[0]!.end();
    expect((await got).body).toBe('123456789012345');
    const again = send(handler);
    expect(calls).toBe(2);
    bodies[1]!.push('ok');
    bodies[1]!.end();
    expect((await again).xCache).toBe('MISS');
  });

  it('aborts the upstream exchange and stores nothing when the client goes away during a miss', () => {
    const bodies: PushBody[] = [];
    let aborted = 0;
    const next: Handler = () =>
      new Observable((s) => {
        const body = new PushBody();
        bodies.push(body);
        s.next({ status: 200, headers: [], body });
        return () => aborted++; // completes only once the body has ended
      });
    const handler = cache({ clock: new FakeClock() })(next);
    const client = handler(request()).subscribe((r) => r.body!.pipe({ write: () => true, end: () => {} }));
    bodies[0]!.push('half');
    client.unsubscribe();
    expect(aborted).toBe(1);
    handler(request()).subscribe((r) => r.body!.pipe({ write: () => true, end: () => {} }));
    expect(bodies).toHaveLength(2); // a miss again: the first never got stored
  });

  it('stores nothing when the client destroys the body before it ends', async () => {
    const bodies: PushBody[] = [];
    const next: Handler = () =>
      new Observable((s) => {
        const body = new PushBody();
        bodies.push(body);
        s.next({ status: 200, headers: [], body });
        s.complete();
      });
    const handler = cache({ clock: new FakeClock() })(next);
    handler(request()).subscribe((r) => {
      r.body!.pipe({ write: () => true, end: () => {} });
      r.body!.destroy();
    });
    expect(bodies[0]!.destroyed).toBe(true);
    const again = send(handler);
    bodies[1]!.push('ok');
    bodies[1]!.end();
    expect(await again).toMatchObject({ xCache: 'MISS', body: 'ok' });
  });

  it('makes one upstream request for concurrent misses and gives every waiter the stored body', async () => {
    const clock = new FakeClock();
    const release = new Subject<void>();
    let calls = 0;
    const next: Handler = () =>
      new Observable((s) => {
        calls++;
        const sub = release.subscribe(() => {
          s.next({ status: 200, headers: [], body: new BufferedBody([Buffer.from('shared '), Buffer.from('body')]) });
          s.complete();
        });
        return () => sub.unsubscribe();
      });
    const handler = cache({ clock })(next);
    const pending = Array.from({ length: 5 }, () => send(handler));
    release.next();
    const results = await Promise.all(pending);
    expect(calls).toBe(1);
    expect(results.map((r) => r.body)).toEqual(Array(5).fill('shared body'));
    expect(results.map((r) => r.xCache)).toEqual(['MISS', 'HIT', 'HIT', 'HIT', 'HIT']);
  });

  it('sends each coalesced waiter upstream itself when the shared response is uncacheable', async () => {
    const clock = new FakeClock();
    const release = new Subject<void>();
    let calls = 0;
    const next: Handler = () =>
      new Observable((s) => {
        const n = ++calls;
        const answer = () => {
          s.next({ status: 200, headers: ['cache-control', 'no-store'], body: BufferedBody.of(`v${n}`) });
          s.complete();
        };
        if (n > 1) answer();
        else {
          const sub = release.subscribe(answer);
          return () => sub.unsubscribe();
        }
        return undefined;
      });
    const handler = cache({ clock })(next);
    const pending = Array.from({ length: 3 }, () => send(handler));
    expect(calls).toBe(1);
    release.next();
    const results = await Promise.all(pending);
    expect(calls).toBe(3);
    expect(results.map((r) => r.body).sort()).toEqual(['v1', 'v2', 'v3']);
    expect(results.every((r) => r.xCache === 'MISS')).toBe(true);
  });

  it('releases the waiters when the leading client goes away before the body ends', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const next: Handler = () =>
      new Observable((s) => {
        calls++;
        if (calls === 1) return; // the leader's upstream never answers
        s.next({ status: 200, headers: [], body: BufferedBody.of('late') });
        s.complete();
        return undefined;
      });
    const handler = cache({ clock })(next);
    const leader = handler(request()).subscribe();
    const waiter = send(handler);
    leader.unsubscribe();
    expect((await waiter).body).toBe('late');
    expect(calls).toBe(2);
  });

  it('serves a stale entry within stale-while-revalidate and refreshes it once in the background', async () => {
    const { clock, up, handler } = setup({}, (_r, n) => ({
      headers: ['cache-control', 'max-age=10, stale-while-revalidate=30'], body: `v${n}`,
    }));
    await send(handler);
    clock.advance(15_000);
    const stale = await send(handler);
    await Promise.resolve();
    const fresh = await send(handler);
    expect(stale).toMatchObject({ xCache: 'STALE', body: 'v1', age: '15' });
    expect(fresh).toMatchObject({ xCache: 'HIT', body: 'v2' });
    expect(up.calls).toBe(2);
  });

  it('tries the background revalidation again on a later stale hit after one failed', async () => {
    const { clock, up, handler } = setup({}, (_r, n) =>
      n === 2 ? new BadGatewayError('down') : { headers: ['cache-control', 'max-age=10, stale-while-revalidate=60'], body: `v${n}` });
    await send(handler);
    clock.advance(15_000);
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'v1' });
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'v1' });
    await Promise.resolve();
    expect(await send(handler)).toMatchObject({ xCache: 'HIT', body: 'v3' });
    expect(up.calls).toBe(3);
  });

  it('uses the route default stale-while-revalidate when the upstream sends none', async () => {
    const { clock, up, handler } = setup({ ttl: '10s', staleWhileRevalidate: '1m' });
    await send(handler);
    clock.advance(30_000);
    expect((await send(handler)).xCache).toBe('STALE');
    // the background refresh at +30s is fresh until +40s and may be served stale until +100s
    clock.advance(71_000);
    expect((await send(handler)).xCache).toBe('MISS');
    expect(up.calls).toBe(3);
  });

  it('does not hold the client while the background revalidation is pending, and starts only one', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const next: Handler = () =>
      new Observable((s) => {
        if (++calls > 1) return; // revalidation never answers
        s.next({ status: 200, headers: ['cache-control', 'max-age=1, stale-while-revalidate=60'], body: BufferedBody.of('old') });
        s.complete();
      });
    const handler = cache({ clock })(next);
    await send(handler);
    clock.advance(5_000);
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'old' });
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'old' });
    expect(calls).toBe(2);
  });

  it('serves a stale entry within stale-if-error when the upstream fails with a 5xx error', async () => {
    const { clock, handler } = setup({}, (_r, n) =>
      n === 1 ? { headers: ['cache-control', 'max-age=10, stale-if-error=60'], body: 'good' } : new BadGatewayError('down'));
    await send(handler);
    clock.advance(20_000);
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'good', age: '20' });
  });

  it('serves a stale entry within stale-if-error instead of a 5xx response', async () => {
    const { clock, handler } = setup({ staleIfError: '1m', ttl: '10s' }, (_r, n) =>
      n === 1 ? { body: 'good' } : { status: 503, body: 'oops' });
    await send(handler);
    clock.advance(20_000);
    expect(await send(handler)).toMatchObject({ status: 200, xCache: 'STALE', body: 'good' });
  });

  it('gives coalesced waiters the stale entry when the shared upstream request fails', async () => {
    const clock = new FakeClock();
    const release = new Subject<void>();
    let calls = 0;
    const next: Handler = () =>
      new Observable((s) => {
        if (++calls === 1) {
          s.next({ status: 200, headers: ['cache-control', 'max-age=10, stale-if-error=60'], body: BufferedBody.of('good') });
          s.complete();
          return undefined;
        }
        const sub = release.subscribe(() => s.error(new BadGatewayError('down')));
        return () => sub.unsubscribe();
      });
    const handler = cache({ clock })(next);
    await send(handler);
    clock.advance(20_000);
    const pending = Array.from({ length: 3 }, () => send(handler));
    release.next();
    const results = await Promise.all(pending);
    expect(results.map((r) => [r.xCache, r.body])).toEqual(Array(3).fill(['STALE', 'good']));
    expect(calls).toBe(2);
  });

  it('passes 4xx errors through and fails once stale-if-error has run out', async () => {
    const { clock, handler } = setup({ staleIfError: '1m', ttl: '10s' }, (_r, n) =>
      n === 1 ? { body: 'good' } : n === 2 ? new BadRequestError('no') : new BadGatewayError('down'));
    await send(handler);
    clock.advance(20_000);
    await expect(send(handler)).rejects.toBeInstanceOf(BadRequestError);
    clock.advance(60_000);
    await expect(send(handler)).rejects.toBeInstanceOf(BadGatewayError);
  });

  it('replaces a stale-if-error entry when the upstream answers well', async () => {
    const { clock, handler } = setup({ staleIfError: '1m', ttl: '10s' });
    await send(handler);
    clock.advance(20_000);
    expect(await send(handler)).toMatchObject({ xCache: 'MISS', body: 'v2' });
    expect(await send(handler)).toMatchObject({ xCache: 'HIT', body: 'v2' });
  });

  it('expires an entry after the route TTL on the injected clock', async () => {
    const { clock, up, handler } = setup({ ttl: '30s' });
    await send(handler);
    clock.advance(29_999);
    expect((await send(handler)).xCache).toBe('HIT');
    clock.advance(1);
    expect(await send(handler)).toMatchObject({ xCache: 'MISS', body: 'v2' });
    expect(up.calls).toBe(2);
  });

  it('prefers s-maxage over max-age over the route TTL, capped by maxTtl', async () => {
    const run = async (options: CacheOptions, cc: string, wait: number) => {
      const { clock, handler } = setup(options, () => ({ headers: ['cache-control', cc] }));
      await send(handler);
      clock.advance(wait);
      return (await send(handler)).xCache;
    };
    expect(await run({ ttl: '1s' }, 'max-age=100', 50_000)).toBe('HIT');
    expect(await run({ ttl: '1s' }, 'max-age=100, s-maxage=10', 50_000)).toBe('MISS');
    expect(await run({ ttl: '1s', maxTtl: '20s' }, 'max-age=100', 50_000)).toBe('MISS');
  });

  it('does not replay hop-by-hop headers or those the Connection header names', async () => {
    const { handler } = setup({}, () => ({
      headers: ['connection', 'x-trace', 'x-trace', '1', 'keep-alive', 'timeout=5', 'content-type', 'text/plain', 'set-cookie2', 'x'],
    }));
    await send(handler);
    const hit = await send(handler);
    const names = hit.headers.filter((_h, i) => i % 2 === 0);
    expect(names).toEqual(['content-type', 'set-cookie2', 'accept-ranges', 'x-cache', 'age']);
  });

  it('turns a failing store into a bypass and reports the failure', async () => {
    const errors: unknown[] = [];
    const broken: CacheStore = {
      get: () => Promise.reject(new Error('redis down')),
      set: () => Promise.reject(new Error('redis down')),
    };
    const { up, handler } = setup({ store: broken, onStoreError: (e) => errors.push(e) });
    const res = await send(handler);
    expect(res).toMatchObject({ status: 200, xCache: 'BYPASS', body: 'v1' });
    expect(up.calls).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('works over a store that answers with promises', async () => {
    const mem = new MemoryCacheStore();
    const asyncStore: CacheStore = {
      get: (k) => Promise.resolve(mem.get(k)),
      set: (k: string, r: CacheRecord, ttl: number) => Promise.resolve(mem.set(k, r, ttl)),
    };
    const { up, handler } = setup({ store: asyncStore }, () => ({ headers: ['vary', 'accept'] }));
    await send(handler);
    expect((await send(handler)).xCache).toBe('HIT');
    expect(up.calls).toBe(1);
  });

  it('throws a TypeError at build time for bad options', () => {
    expect(() => cache({ ttl: 'soon' })).toThrow(TypeError);
    expect(() => cache({ maxEntrySize: -1 })).toThrow(TypeError);
    expect(() => cache({ statuses: [42] })).toThrow(TypeError);
  });
});

describe('cache on a virtual runtime', () => {
  /** Moves `vts` (and so the runtime's clocks) forward by `ms`, running the work due. */
  function advance(vts: VirtualTimeScheduler, ms: number): void {
    vts.schedule(() => {}, ms);
    vts.maxFrames = vts.now() + ms; // run what is due by then, nothing later
    vts.flush();
    vts.maxFrames = Infinity;
  }

  it('lets an entry go stale, then expire, as virtual time advances', async () => {
    const vts = new VirtualTimeScheduler();
    const up = upstream((_r, n) => ({ headers: ['cache-control', 'max-age=10, stale-while-revalidate=5'], body: `v${n}` }));
    const handler = cache({ runtime: virtualRuntime(vts) })(up.handler);
    await send(handler);
    advance(vts, 9_999);
    expect(await send(handler)).toMatchObject({ xCache: 'HIT', age: '9', body: 'v1' });
    advance(vts, 1);
    // stale: served, and refreshed in the background (v2)
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'v1' });
    expect(up.calls).toBe(2);
    advance(vts, 15_000);
    expect(await send(handler)).toMatchObject({ xCache: 'MISS', body: 'v3' });
  });

  it('times the wall clock of the runtime, so Age and Expires agree with it', async () => {
    const vts = new VirtualTimeScheduler();
    const runtime = virtualRuntime(vts, { epoch: Date.UTC(2026, 0, 1) });
    const expires = new Date(Date.UTC(2026, 0, 1, 0, 1)).toUTCString(); // a minute after the epoch
    const date = new Date(Date.UTC(2026, 0, 1)).toUTCString();
    const up = upstream(() => ({ headers: ['expires', expires, 'date', date] }));
    const handler = cache({ runtime })(up.handler);
    await send(handler);
    advance(vts, 59_000);
    expect(await send(handler)).toMatchObject({ xCache: 'HIT', age: '59' });
    advance(vts, 1_000);
    expect((await send(handler)).xCache).toBe('MISS');
  });

  it('gives a memory store the wall clock of the runtime unless it has a clock of its own', () => {
    const vts = new VirtualTimeScheduler();
    const record: CacheRecord = { kind: 'vary', names: ['accept'] };
    const onRuntime = new MemoryCacheStore({ runtime: virtualRuntime(vts) });
    const ownClock = new MemoryCacheStore({ runtime: virtualRuntime(vts), clock: new FakeClock() });
    onRuntime.set('k', record, 1_000);
    ownClock.set('k', record, 1_000);
    advance(vts, 1_000);
    expect(onRuntime.get('k')).toBeUndefined();
    expect(ownClock.get('k')).toEqual(record);
  });

  it('gives up on a Redis command by the timeout on the scheduler of the runtime', async () => {
    const vts = new VirtualTimeScheduler();
    const silent = { getBuffer: () => new Promise(() => {}) } as unknown as ConstructorParameters<typeof RedisCacheStore>[0];
    const errors: unknown[] = [];
    const store = new RedisCacheStore(silent, { timeout: '250ms', runtime: virtualRuntime(vts), onError: (e) => errors.push(e) });
    const got = store.get('k');
    advance(vts, 249);
    expect(errors).toEqual([]);
    advance(vts, 1);
    expect(errors).toHaveLength(1);
    await expect(got).rejects.toBeInstanceOf(CacheStoreTimeoutError);
    expect(store.errors).toBe(1);
  });
});

describe('MemoryCacheStore', () => {
  const record = (size: number): CacheRecord => ({
    kind: 'entry', status: 200, statusText: undefined, headers: [], vary: [], body: BufferedBody.of('x'.repeat(size)),
    storedAt: 0, initialAge: 0, freshUntil: 1e12, staleWhileRevalidate: 0, staleIfError: 0,
  });

  it('evicts the least recently used entries to stay under maxBytes', () => {
    // Each record counts its bytes in the log (~380) plus 48 of index: room for two, not three.
    const store = new MemoryCacheStore({ maxBytes: 1_000, clock: new FakeClock() });
    store.set('a', record(300), 60_000);
    store.set('b', record(300), 60_000);
    store.get('a');
    store.set('c', record(300), 60_000);
    expect(store.get('a')).toBeDefined();
    expect(store.get('b')).toBeUndefined();
    expect(store.get('c')).toBeDefined();
    expect(store.bytes).toBeLessThanOrEqual(2_500);
    expect(store.evictions).toBe(1);
  });

  it('does not store an entry larger than maxBytes and forgets entries past their TTL', () => {
    const clock = new FakeClock();
    const store = new MemoryCacheStore({ maxBytes: 1_000, clock });
    store.set('huge', record(2_000), 60_000);
    store.set('small', record(10), 5_000);
    expect(store.get('huge')).toBeUndefined();
    clock.advance(5_000);
    expect(store.get('small')).toBeUndefined();
    expect(store.bytes).toBe(0);
  });

  it('keeps its own copy of a record: changing the stored body afterwards changes nothing', () => {
    const store = new MemoryCacheStore({ clock: new FakeClock() });
    const bytes = Buffer.from('original');
    const rec: CacheRecord = { ...(record(0) as CacheEntry), headers: ['content-type', 'text/plain'], body: new BufferedBody([bytes]) };
    store.set('k', rec, 60_000);
    bytes.write('mutated!');
    const back = store.get('k');
    expect(back?.kind === 'entry' && Buffer.concat(back.body!.chunks as Uint8Array[]).toString()).toBe('original');
    expect(back).toMatchObject({ kind: 'entry', status: 200, headers: ['content-type', 'text/plain'], vary: [] });
  });
});

describe('packed records (the memory store keeps each record as one Buffer)', () => {
  const entry: CacheRecord = {
    kind: 'entry', status: 203, statusText: 'Non-Authoritative Információ', headers: ['content-type', 'application/octet-stream', 'x-name', 'Zoë ☃', 'set-cookie2', ''],
    vary: ['accept', 'accept-language'], body: new BufferedBody([Buffer.from([0, 255, 10]), Buffer.from('tail')]),
    storedAt: 1.5e12 + 0.25, initialAge: 4, freshUntil: 1.5e12 + 60_000, staleWhileRevalidate: 1_000, staleIfError: 2_000,
  };
  const bodyOf = (r: CacheRecord | undefined): Buffer | null | undefined =>
    r?.kind === 'entry' ? (r.body === null ? null : Buffer.concat(r.body.chunks as Uint8Array[])) : undefined;

  it('round-trips an entry: numbers, status text, headers (non-ASCII and empty values), vary names and a binary body', () => {
    const back = unpack(pack(entry));
    expect(back).toEqual({ ...entry, body: expect.anything() as unknown });
    expect(bodyOf(back)).toEqual(Buffer.from([0, 255, 10, 116, 97, 105, 108]));
  });

  it('tells a missing body from an empty one, and keeps a missing status text missing', () => {
    const none = unpack(pack({ ...entry, statusText: undefined, body: null }));
    const empty = unpack(pack({ ...entry, body: new BufferedBody([]) }));
    expect(bodyOf(none)).toBeNull();
    expect(none.kind === 'entry' && none.statusText).toBeUndefined();
    expect(bodyOf(empty)).toEqual(Buffer.alloc(0));
  });

  it('round-trips entries with no headers or no vary names, and vary records', () => {
    for (const over of [{ headers: [] }, { vary: [] }, { headers: [], vary: [] }, { headers: [], vary: [], statusText: undefined }]) {
      const e = { ...entry, ...over } as CacheRecord;
      expect(unpack(pack(e))).toEqual({ ...e, body: expect.anything() as unknown });
    }
    expect(unpack(pack({ kind: 'vary', names: ['accept', 'origin'] }))).toEqual({ kind: 'vary', names: ['accept', 'origin'] });
    expect(unpack(pack({ kind: 'vary', names: [] }))).toEqual({ kind: 'vary', names: [] });
  });

  it('packs into exactly the bytes it needs, the body last', () => {
    const buf = pack(entry);
    expect(buf.subarray(buf.length - 7)).toEqual(Buffer.from([0, 255, 10, 116, 97, 105, 108]));
    expect(pack({ ...entry, body: null }).length).toBe(buf.length - 7);
  });
});
