import { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { getHeader } from '../../lib/headers.ts';
import { cache, type CacheOptions } from '../../lib/stages/cache/cache.ts';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import { baseKey } from '../../lib/stages/cache/key.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { freshen, hasValidator, revalidationHeaders, selects, updatedHeaders } from '../../lib/stages/cache/revalidation.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest, respond } from '../support/request.ts';
import { until } from '../support/wait.ts';

/**
 * Revalidation (RFC 9111 §4.3, nginx's proxy_cache_revalidate): an expired
 * entry with a validator goes upstream with the stored ETag and
 * Last-Modified, and a 304 freshens it. Before, it was fetched whole, and
 * gone from the store once its stale windows closed.
 */

const LM = 'Wed, 21 Oct 2015 07:28:00 GMT';
const POLICY = { statuses: new Set([200]), ttl: 60_000, maxTtl: null, staleWhileRevalidate: 0, staleIfError: 0 };

function entry(headers: string[], over: Partial<CacheEntry> = {}): CacheEntry {
  return {
    kind: 'entry', status: 200, statusText: undefined, headers, body: BufferedBody.of('stored'), vary: [],
    storedAt: 0, initialAge: 0, freshUntil: 1000, staleWhileRevalidate: 0, staleIfError: 0, ...over,
  };
}

const notModified = (headers: string[]): GatewayResponse => ({ status: 304, headers, body: null });

describe('the 304\'s header fields update the stored ones (RFC 9111 §3.2)', () => {
  it('replaces every stored line of a name the 304 sends, keeps the others in order, and never takes Content-Length or Content-Encoding from it', () => {
    const stored = ['content-type', 'application/json', 'cache-control', 'max-age=1', 'x-a', '1', 'x-a', '2', 'content-length', '12', 'content-encoding', 'gzip', 'etag', '"e1"'];
    const fresh = ['cache-control', 'max-age=60', 'x-a', '3', 'content-length', '0', 'content-encoding', 'br', 'date', LM];
    expect(updatedHeaders(stored, fresh)).toEqual([
      'content-type', 'application/json', 'content-length', '12', 'content-encoding', 'gzip', 'etag', '"e1"',
      'cache-control', 'max-age=60', 'x-a', '3', 'date', LM,
    ]);
  });

  it('keeps the stored Content-Type: a 304\'s (a framework\'s default on every response) does not relabel the stored body', () => {
    const stored = ['content-type', 'application/json', 'etag', '"e1"', 'cache-control', 'max-age=1'];
    expect(updatedHeaders(stored, ['etag', '"e1"', 'content-type', 'text/html; charset=UTF-8', 'cache-control', 'max-age=60'])).toEqual([
      'content-type', 'application/json', 'etag', '"e1"', 'cache-control', 'max-age=60',
    ]);
  });

  it('freshens from the 304: its Cache-Control and Age set the new lifetime from now, hop-by-hop fields are not stored, the body is the stored one', () => {
    const old = entry(['etag', '"e1"', 'cache-control', 'max-age=1', 'content-type', 'text/plain']);
    const { entry: e, storable } = freshen(old, notModified(['etag', '"e1"', 'cache-control', 'max-age=60', 'age', '10', 'connection', 'x-hop', 'x-hop', '1', 'keep-alive', 'timeout=5']), 5000, POLICY);
    expect(storable).toBe(true);
    // accept-ranges: a stored 200 answers byte ranges (range.ts)
    expect(e.headers).toEqual(['etag', '"e1"', 'content-type', 'text/plain', 'cache-control', 'max-age=60', 'accept-ranges', 'bytes']);
    expect([e.storedAt, e.initialAge, e.freshUntil]).toEqual([5000, 10, 5000 + 60_000 - 10_000]);
    expect(e.body).toBe(old.body);
    // no Cache-Control in the 304: the stored one gives the lifetime, counted from now
    expect(freshen(old, notModified(['etag', '"e1"']), 5000, POLICY).entry.freshUntil).toBe(6000);
  });

  it('answers from a 304 that forbids storing (no-store, Set-Cookie) without storing it', () => {
    const old = entry(['etag', '"e1"', 'cache-control', 'max-age=1']);
    for (const fresh of [['cache-control', 'no-store'], ['set-cookie', 'a=1']]) {
      const { entry: e, storable } = freshen(old, notModified(fresh), 5000, POLICY);
      expect(storable, fresh[0]).toBe(false);
      expect([e.storedAt, e.headers.includes(fresh[1]!)], fresh[0]).toEqual([5000, true]);
    }
  });
});

describe('which stored response a 304 is about (RFC 9111 §4.3.4)', () => {
  it('the one with its ETag (weak comparison), else its Last-Modified; a 304 with neither selects none (a stored entry always has one)', () => {
    const both = entry(['etag', '"e1"', 'last-modified', LM]);
    expect(selects(both, notModified(['etag', '"e1"']))).toBe(true);
    expect(selects(both, notModified(['etag', 'W/"e1"']))).toBe(true);
    expect(selects(both, notModified(['etag', '"e2"', 'last-modified', LM]))).toBe(false);
    expect(selects(entry(['last-modified', LM]), notModified(['last-modified', 'Thu, 22 Oct 2015 07:28:00 GMT']))).toBe(false);
    expect(selects(entry(['last-modified', LM]), notModified(['last-modified', LM]))).toBe(true);
    expect(selects(both, notModified([]))).toBe(false);
    expect(selects(entry(['last-modified', LM]), notModified(['cache-control', 'max-age=60']))).toBe(false);
    // a Last-Modified the stored entry has none to compare with does not correspond to it
    expect(selects(entry(['etag', '"e1"']), notModified(['last-modified', LM]))).toBe(false);
  });

  it('a strong 304 ETag selects the stored weak one (nginx weakens a gzipped 200\'s, never its 304\'s), and the stored ETag is kept', () => {
    const gz = entry(['etag', 'W/"e1"', 'content-encoding', 'gzip', 'cache-control', 'max-age=1']);
    expect(selects(gz, notModified(['etag', '"e1"']))).toBe(true);
    expect(freshen(gz, notModified(['etag', '"e1"', 'cache-control', 'max-age=60']), 5000, POLICY).entry.headers).toEqual([
      'etag', 'W/"e1"', 'content-encoding', 'gzip', 'cache-control', 'max-age=60', // no accept-ranges: coded, no strong ETag (range.ts rangeable)
    ]);
  });

  it('the request carries the stored validators in place of the client\'s, or none without one', () => {
    const h = { host: 'a', 'if-none-match': '"client"', 'if-match': '"x"', 'if-unmodified-since': LM, 'if-modified-since': LM };
    expect(revalidationHeaders(h, entry(['etag', '"e1"']))).toEqual({ host: 'a', 'if-none-match': '"e1"' });
    expect(revalidationHeaders(h, entry(['last-modified', LM]))).toEqual({ host: 'a', 'if-modified-since': LM });
    expect(revalidationHeaders(h, entry(['content-type', 'text/plain']))).toBeNull();
    expect([hasValidator(['etag', '"e1"']), hasValidator(['last-modified', LM]), hasValidator(['date', LM])]).toEqual([true, true, false]);
  });
});

function request(headers: Record<string, string> = {}, over: Partial<GatewayRequest> = {}): GatewayRequest {
  return gatewayRequest({ path: '/items', headers: { host: 'api.test', ...headers }, ...over });
}

interface Reply { status: number; headers: string[]; body: string | null; /** The exchange fails after the head (undici's length check of a 304 with Content-Length). */ fail?: Error }

/**
 * An upstream whose answers the test releases (`answer`), so concurrent
 * requests can be lined up; `auto` answers at once instead.
 */
function setup(options: CacheOptions, auto?: (req: GatewayRequest, n: number) => Reply) {
  let t = 1_000_000;
  const clock = { now: () => t, advance: (ms: number) => { t += ms; } };
  const seen: GatewayRequest[] = [];
  const pending: Array<(r: Reply) => void> = [];
  const up = ((req: GatewayRequest) => new Observable<GatewayResponse>((s) => {
    seen.push(req);
    const reply = (r: Reply): void => {
      s.next({ status: r.status, headers: r.headers, body: r.body === null ? null : BufferedBody.of(r.body) });
      if (r.fail !== undefined) s.error(r.fail);
      else s.complete();
    };
    if (auto !== undefined) reply(auto(req, seen.length));
    else pending.push(reply);
  })) as Handler;
  const store = new MemoryCacheStore({ clock });
  return { clock, seen, pending, store, handler: cache({ clock, store, ...options })(up) };
}

async function send(h: Handler, req: GatewayRequest = request()) {
  const { response: r, body: b } = await respond(h, req);
  return { status: r.status, body: b === null ? null : b.toString(), xCache: getHeader(r.headers, 'x-cache'), age: getHeader(r.headers, 'age'), cc: getHeader(r.headers, 'cache-control') };
}

const FIRST: Reply = { status: 200, headers: ['etag', '"e1"', 'cache-control', 'max-age=60'], body: 'stored body' };
const SAME: Reply = { status: 304, headers: ['etag', '"e1"', 'cache-control', 'max-age=120'], body: null };

/** An upstream answering by hand, and FIRST stored and expired (61 s later). */
async function expiredEntry() {
  const s = setup({});
  const first = send(s.handler);
  s.pending.shift()!(FIRST);
  await first;
  s.clock.advance(61_000);
  return s;
}

describe('an expired entry revalidated by the cache operator', () => {
  it('makes one conditional request for concurrent clients of the key, which all get the stored body (REVALIDATED for the leader, HIT for the waiters)', async () => {
    const { seen, pending, handler } = await expiredEntry();
    const five = [0, 1, 2, 3, 4].map(() => send(handler));
    expect(seen.map((r) => r.headers['if-none-match'])).toEqual([undefined, '"e1"']);
    pending.shift()!(SAME);
    const got = await Promise.all(five);
    expect(got.map((g) => [g.status, g.xCache, g.body, g.cc])).toEqual([
      [200, 'REVALIDATED', 'stored body', 'max-age=120'],
      ...Array(4).fill([200, 'HIT', 'stored body', 'max-age=120']),
    ]);
    expect(seen).toHaveLength(2);
  });

  it('serves the stale entry when the revalidation fails inside stale-if-error, and passes a 5xx on once that window has closed', async () => {
    const { clock, seen, handler } = setup({ staleIfError: '30s' }, (_req, n) => (n === 1 ? FIRST : { status: 503, headers: [], body: 'down' }));
    await send(handler);
    clock.advance(61_000);
    expect(await send(handler)).toMatchObject({ status: 200, xCache: 'STALE', body: 'stored body' });
    clock.advance(30_000);
    expect(await send(handler)).toMatchObject({ status: 503, xCache: 'MISS', body: 'down' });
    expect(seen.map((r) => r.headers['if-none-match'])).toEqual([undefined, '"e1"', '"e1"']);
  });

  it('follows a 304 about another response (its ETag differs) or about none (no validator, RFC 9111 §4.3.4) with one request without validators, and never hands that 304 on', async () => {
    for (const other of [['etag', '"other"'], ['cache-control', 'max-age=60']]) {
      const { clock, seen, handler } = setup({}, (req, n) => (n === 1 ? FIRST
        : req.headers['if-none-match'] !== undefined ? { status: 304, headers: other, body: null }
          : { status: 200, headers: ['etag', '"e2"', 'cache-control', 'max-age=60'], body: 'new body' }));
      await send(handler);
      clock.advance(61_000);
      expect(await send(handler), other[0]).toMatchObject({ status: 200, xCache: 'MISS', body: 'new body' });
      expect(seen.map((r) => r.headers['if-none-match']), other[0]).toEqual([undefined, '"e1"', undefined]);
      expect(await send(handler), other[0]).toMatchObject({ status: 200, xCache: 'HIT', body: 'new body' });
    }
  });

  it('keeps an entry with a validator `keep` past its windows, one without none, and nothing with keep: 0', async () => {
    for (const [keep, headers, revalidated] of [['10m', FIRST.headers, true], ['10m', ['cache-control', 'max-age=60'], false], [0, FIRST.headers, false]] as const) {
      const { clock, seen, handler } = setup({ keep }, (_req, n) => (n === 1 ? { ...FIRST, headers: [...headers] } : SAME));
      await send(handler);
      clock.advance(60_000 + 9 * 60_000);
      const again = await send(handler);
      expect(again.xCache, `${keep} ${headers.join()}`).toBe(revalidated ? 'REVALIDATED' : 'MISS');
      expect(seen[1]!.headers['if-none-match'], `${keep} ${headers.join()}`).toBe(revalidated ? '"e1"' : undefined);
    }
  });

  it('answers the client\'s own preconditions from the freshened entry, tagged REVALIDATED', async () => {
    const { clock, handler } = setup({}, (_req, n) => (n === 1 ? FIRST : SAME));
    await send(handler);
    clock.advance(61_000);
    expect(await send(handler, request({ 'if-none-match': '"e1"' }))).toMatchObject({ status: 304, xCache: 'REVALIDATED', body: null });
    clock.advance(121_000);
    await expect(send(handler, request({ 'if-match': '"zz"' }))).rejects.toMatchObject({ code: 'PRECONDITION_FAILED', headers: { 'x-cache': 'REVALIDATED' } });
  });

  it('does not overwrite a response stored while the 304 was on its way (the memory store\'s replace compares storedAt)', async () => {
    const { pending, store, handler } = await expiredEntry();
    const revalidating = send(handler);
    // a client no-cache refresh stores a new response meanwhile
    const refresh = send(handler, request({ 'cache-control': 'no-cache' }));
    pending.pop()!({ status: 200, headers: ['etag', '"e2"', 'cache-control', 'max-age=60'], body: 'newer' });
    await refresh;
    pending.shift()!(SAME);
    expect(await revalidating).toMatchObject({ status: 200, xCache: 'REVALIDATED', body: 'stored body' });
    expect((store.get(baseKey(request())) as CacheEntry).headers).toContain('"e2"');
    expect(await send(handler)).toMatchObject({ xCache: 'HIT', body: 'newer' });
  });
});

describe('what a 304 does to the stored records', () => {
  it('extends a Vary entry\'s vary record with the variant: the freshened entry is found after the record\'s first lifetime', async () => {
    const vary: Reply = { status: 200, headers: ['etag', '"e1"', 'cache-control', 'max-age=60', 'vary', 'accept-encoding'], body: 'gzip body' };
    const { clock, seen, handler } = setup({}, (_req, n) => (n === 1 ? vary : { status: 304, headers: ['etag', '"e1"', 'cache-control', 'max-age=600'], body: null }));
    const gz = () => request({ 'accept-encoding': 'gzip' });
    await send(handler, gz());
    clock.advance(5 * 60_000);
    expect(await send(handler, gz())).toMatchObject({ xCache: 'REVALIDATED', body: 'gzip body' });
    // the first records were kept 60 s + keep (10 min); the variant is fresh until 15 min
    clock.advance(6 * 60_000 + 1000);
    expect(await send(handler, gz())).toMatchObject({ xCache: 'HIT', body: 'gzip body' });
    expect(seen).toHaveLength(2);
  });
  it('removes the stored entry when the 304\'s fields forbid a shared cache to store it (no-store, private): a later 5xx is no longer answered STALE from it', async () => {
    for (const cc of ['private, max-age=60', 'no-store']) {
      const { clock, seen, store, handler } = setup({}, (_req, n) => (n === 1 ? { ...FIRST, headers: ['etag', '"e1"', 'cache-control', 'max-age=60, stale-if-error=600'], body: 'shared' }
        : n === 2 ? { status: 304, headers: ['etag', '"e1"', 'cache-control', cc], body: null } : { status: 503, headers: [], body: 'down' }));
      await send(handler);
      clock.advance(61_000);
      expect(await send(handler), cc).toMatchObject({ status: 200, xCache: 'REVALIDATED', body: 'shared', cc });
      expect(store.get(baseKey(request())), cc).toBeUndefined();
      clock.advance(1000);
      expect(await send(handler), cc).toMatchObject({ status: 503, xCache: 'MISS', body: 'down' });
      expect(seen.map((r) => r.headers['if-none-match']), cc).toEqual([undefined, '"e1"', undefined]);
    }
  });

  it('removes the stored entry when the background refresh\'s 304 says no-store: not served STALE and refreshed again on every hit', async () => {
    const { clock, seen, handler } = setup({}, (req, n) => (req.headers['if-none-match'] !== undefined ? { status: 304, headers: ['etag', '"e1"', 'cache-control', 'no-store'], body: null }
      : { status: 200, headers: ['etag', '"e1"', 'cache-control', n === 1 ? 'max-age=60, stale-while-revalidate=600' : 'max-age=60'], body: `body ${n}` }));
    await send(handler);
    clock.advance(61_000);
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'body 1' });
    await until(() => seen.length === 2);
    expect(await send(handler)).toMatchObject({ xCache: 'MISS', body: 'body 3' });
    expect(await send(handler)).toMatchObject({ xCache: 'HIT', body: 'body 3' });
    expect(seen.map((r) => r.headers['if-none-match'])).toEqual([undefined, '"e1"', undefined]);
  });

  it('runs one background refresh at a time when the first exchange fails after its 304 about another response, while the GET that follows it runs', async () => {
    const { clock, seen, pending, handler } = setup({});
    const first = send(handler);
    pending.shift()!({ ...FIRST, headers: ['etag', '"e1"', 'cache-control', 'max-age=60, stale-while-revalidate=600'] });
    await first;
    clock.advance(61_000);
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'stored body' });
    pending.shift()!({ status: 304, headers: ['etag', '"other"'], body: null, fail: new Error('response body length mismatch') });
    // the GET without validators that follows it is under way: a stale hit meanwhile starts none
    expect(await send(handler)).toMatchObject({ xCache: 'STALE', body: 'stored body' });
    expect(seen.map((r) => r.headers['if-none-match'])).toEqual([undefined, '"e1"', undefined]);
    pending.shift()!({ status: 200, headers: ['etag', '"e2"', 'cache-control', 'max-age=60'], body: 'new body' });
    await until(async () => (await send(handler)).xCache === 'HIT');
    expect(seen).toHaveLength(3);
  });
});

describe('MemoryCacheStore.replace', () => {
  it('writes only while the key holds the entry stored at the given time', () => {
    let t = 0;
    const store = new MemoryCacheStore({ clock: { now: () => t } });
    const a = entry(['etag', '"a"'], { storedAt: 10 });
    store.set('k', a, 1000);
    expect(store.replace('k', entry(['etag', '"b"'], { storedAt: 20 }), 1000, 11)).toBe(false);
    expect(store.replace('missing', a, 1000, 10)).toBe(false);
    expect(store.replace('k', entry(['etag', '"b"'], { storedAt: 20 }), 1000, 10)).toBe(true);
    // decoded by the first hit, then compared by the kept record
    expect((store.get('k') as CacheEntry).headers).toEqual(['etag', '"b"']);
    expect(store.replace('k', entry(['etag', '"c"'], { storedAt: 30 }), 1000, 10)).toBe(false);
    expect(store.replace('k', entry(['etag', '"c"'], { storedAt: 30 }), 1000, 20)).toBe(true);
    t = 2000;
    expect(store.replace('k', a, 1000, 30)).toBe(false);
  });
});
