import { Observable } from 'rxjs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { GatewayTimeoutError, PreconditionFailedError } from '../../lib/errors.ts';
import { getHeader } from '../../lib/headers.ts';
import { cache, type CacheOptions } from '../../lib/stages/cache/cache.ts';
import { evaluate, matches } from '../../lib/stages/cache/conditional.ts';
import { decodeRecord, encodeRecord } from '../../lib/stages/cache/codec.ts';
import type { CacheEntry, CacheRecord } from '../../lib/stages/cache/entry.ts';
import { current } from '../../lib/stages/cache/invalidate.ts';
import { sortedQuery } from '../../lib/stages/cache/key.ts';
import { pack, unpack } from '../../lib/stages/cache/packed.ts';
import { planStorage } from '../../lib/stages/cache/policy.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest, respond } from '../support/request.ts';

/**
 * The cache as an HTTP cache (RFC 9111), where the second black-box audit
 * (notes/s6/audit.md, findings 3, 4, 6, 11) found it was not one: each case
 * here failed on the code before its fix.
 */

const POLICY = { statuses: new Set([200, 206, 304]), ttl: 60_000, maxTtl: null, staleWhileRevalidate: 0, staleIfError: 0 };

function request(over: Partial<GatewayRequest> = {}): GatewayRequest {
  return gatewayRequest({ path: '/items', headers: { host: 'api.test' }, ...over });
}

interface Reply { status?: number; headers?: string[]; body?: string | null }

/** A fake upstream answering `reply(req, n)`; counts calls and keeps the requests it got. */
function upstream(reply: (req: GatewayRequest, n: number) => Reply = (_req, n) => ({ body: `v${n}` })) {
  const fake = {
    calls: 0,
    seen: [] as GatewayRequest[],
    handler: ((req: GatewayRequest) => new Observable<GatewayResponse>((s) => {
      fake.calls++;
      fake.seen.push(req);
      const r = reply(req, fake.calls);
      const body = r.body === undefined ? 'body' : r.body;
      s.next({ status: r.status ?? 200, headers: r.headers ?? [], body: body === null ? null : BufferedBody.of(body) });
      s.complete();
    })) as Handler,
  };
  return fake;
}

function setup(options: CacheOptions = {}, reply?: Parameters<typeof upstream>[0]) {
  let t = 1_000_000;
  const clock = { now: () => t, advance: (ms: number) => { t += ms; } };
  const up = upstream(reply);
  return { clock, up, handler: cache({ clock, ...options })(up.handler) };
}

async function send(h: Handler, req: GatewayRequest = request()) {
  const { response: r, body: b } = await respond(h, req);
  return { status: r.status, headers: r.headers, body: b === null ? null : b.toString(), xCache: getHeader(r.headers, 'x-cache') };
}

function configProblems(text: string): readonly string[] {
  try {
    parseConfig(text, 'test.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  return [];
}

describe('206 and 304 are never stored (RFC 9111 §3.3, §4.3.4)', () => {
  it('planStorage refuses a 206 and a 304 even when the statuses list them', () => {
    for (const status of [206, 304]) {
      const res: GatewayResponse = { status, headers: ['cache-control', 'max-age=60'], body: null };
      expect(planStorage(res, 0, POLICY), String(status)).toBeNull();
    }
    expect(planStorage({ status: 200, headers: ['cache-control', 'max-age=60'], body: null }, 0, POLICY)).not.toBeNull();
  });

  it('cache() refuses statuses that list 206 or 304 with a TypeError', () => {
    expect(() => cache({ statuses: [200, 206] })).toThrow(TypeError);
    expect(() => cache({ statuses: [304] })).toThrow(/statuses: 304 is never stored/);
    expect(() => cache({ statuses: [200, 203] })).not.toThrow();
  });

  it('the config refuses a route whose cache statuses list 206 or 304, naming the key', () => {
    const config = (statuses: string): string => `
services:
  up: { upstreams: ["http://127.0.0.1:3001"] }
routes:
  - { path: /c/*, service: up, cache: { statuses: ${statuses} } }
`;
    expect(configProblems(config('[200, 206]'))).toEqual([expect.stringMatching(/^routes\[0\]\.cache\.statuses: 206 and 304 are never stored/)]);
    expect(configProblems(config('[304]'))).toEqual([expect.stringMatching(/^routes\[0\]\.cache\.statuses: /)]);
    expect(configProblems(config('[200, 404]'))).toEqual([]);
  });
});

describe('the cache key keeps repeated query parameters in their order', () => {
  it('sorts parameters by name only, stable: ?x=2&x=1 is not ?x=1&x=2', () => {
    expect(sortedQuery('x=2&x=1')).toBe('?x=2&x=1');
    expect(sortedQuery('x=1&x=2')).toBe('?x=1&x=2');
    expect(sortedQuery('sort=b&page=2&sort=a&flag&flag=1')).toBe('?flag&flag=1&page=2&sort=b&sort=a');
  });

  it('gives a query whose names are all distinct and have a = the key it had before (a sort of the whole parameters)', () => {
    const name = fc.string({ unit: fc.constantFrom('a', 'b', '.', '-', '_', '1', 'A', 'é'), minLength: 1, maxLength: 4 });
    fc.assert(fc.property(fc.uniqueArray(name, { maxLength: 6 }), fc.array(fc.constantFrom('=', '=1', '=b', '=-'), { minLength: 6, maxLength: 6 }), (names, values) => {
      const parts = names.map((n, i) => n + values[i]!);
      const query = parts.join('&');
      expect(sortedQuery(query)).toBe(parts.length === 0 ? '' : parts.length === 1 ? `?${query}` : `?${[...parts].sort().join('&')}`);
    }));
  });

  it('orders repeated and bare names transitively: the key depends only on each name\'s parameters in their order', () => {
    // x's parameters come in another order: two keys (they shared one)
    expect(sortedQuery('x=1&x-y=2&x')).toBe('?x-y=2&x=1&x');
    expect(sortedQuery('x&x=1&x-y=2')).toBe('?x-y=2&x&x=1');
    const name = fc.constantFrom('x', 'x-y', 'x.', 'x0', 'xa', 'y', 'a', 'x_');
    const param = fc.tuple(name, fc.constantFrom('', '=', '=1', '=2')).map(([n, v]) => n + v);
    fc.assert(fc.property(fc.array(param, { minLength: 2, maxLength: 8 }), fc.array(fc.nat(), { minLength: 8, maxLength: 8 }), (parts, order) => {
      const nameOf = (p: string) => p.split('=')[0]!;
      // another interleaving of the same parameters: each name's in their order
      const queues = new Map<string, string[]>();
      for (const p of parts) queues.set(nameOf(p), [...(queues.get(nameOf(p)) ?? []), p]);
      const names = parts.map(nameOf);
      const shuffled = names.map((n, i) => [n, order[i]!] as const).sort((a, b) => a[1] - b[1]).map(([n]) => queues.get(n)!.shift()!);
      expect(sortedQuery(shuffled.join('&'))).toBe(sortedQuery(parts.join('&')));
      // the model: a stable sort by `name=`
      const model = [...parts].sort((a, b) => { const ka = `${nameOf(a)}=`; const kb = `${nameOf(b)}=`; return ka < kb ? -1 : ka > kb ? 1 : 0; });
      expect(sortedQuery(parts.join('&'))).toBe(`?${model.join('&')}`);
    }));
  });

  it('keys a bare ? (GET /x?) apart from no query, as nginx\'s $request_uri does: the upstream gets the two targets', async () => {
    const { up, handler } = setup();
    expect((await send(handler, request({ emptyQuery: true }))).xCache).toBe('MISS');
    expect((await send(handler, request())).xCache).toBe('MISS');
    expect([(await send(handler, request({ emptyQuery: true }))).xCache, (await send(handler, request())).xCache]).toEqual(['HIT', 'HIT']);
    expect(up.seen.map((r) => r.emptyQuery === true)).toEqual([true, false]);
  });

  it('answers ?x=2&x=1 from upstream after ?x=1&x=2 was stored, and ?b=2&a=1 from the entry of ?a=1&b=2', async () => {
    const { up, handler } = setup();
    await send(handler, request({ query: 'x=1&x=2' }));
    expect((await send(handler, request({ query: 'x=2&x=1' }))).xCache).toBe('MISS');
    expect(up.seen.map((r) => r.query)).toEqual(['x=1&x=2', 'x=2&x=1']);
    await send(handler, request({ query: 'a=1&b=2' }));
    expect((await send(handler, request({ query: 'b=2&a=1' }))).xCache).toBe('HIT');
  });
});

describe('a HEAD hit has the head a GET hit has', () => {
  it('carries the stored body\'s length as content-length when the stored answer had none (it came chunked)', async () => {
    const { handler } = setup({}, () => ({ body: 'twenty bytes of body' }));
    await send(handler);
    const head = await send(handler, request({ method: 'HEAD' }));
    expect([head.xCache, head.body, getHeader(head.headers, 'content-length')]).toEqual(['HIT', null, '20']);
  });

  it('keeps the upstream\'s own content-length, once', async () => {
    const { handler } = setup({}, () => ({ headers: ['content-length', '5'], body: 'hello' }));
    await send(handler);
    const head = await send(handler, request({ method: 'HEAD' }));
    expect(head.headers.filter((_, i) => i % 2 === 0 && head.headers[i] === 'content-length')).toHaveLength(1);
    expect(getHeader(head.headers, 'content-length')).toBe('5');
  });
});

const LM = 'Wed, 21 Oct 2015 07:28:00 GMT';

function stored(headers: string[], status = 200): CacheEntry {
  return {
    kind: 'entry', status, statusText: undefined, headers, body: null, vary: [],
    storedAt: Date.parse('Thu, 22 Oct 2015 07:28:00 GMT'), initialAge: 0, freshUntil: Infinity, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

describe('preconditions against a stored response (RFC 9110 §13.2)', () => {
  it('compares entity-tags weakly for If-None-Match and strongly for If-Match, in lists, with *', () => {
    expect(matches('"v1"', '"v1"', false)).toBe(true);
    expect(matches('W/"v1"', '"v1"', false)).toBe(true);
    expect(matches('"v1"', 'W/"v1"', false)).toBe(true);
    expect(matches('"v0", W/"v1"', '"v1"', false)).toBe(true);
    expect(matches('"a,b", "c"', '"a,b"', false)).toBe(true);
    expect(matches('"v0"', '"v1"', false)).toBe(false);
    expect(matches('*', undefined, false)).toBe(true);
    expect(matches('"v1"', undefined, false)).toBe(false);
    expect(matches('"v1"', '"v1"', true)).toBe(true);
    expect(matches('W/"v1"', '"v1"', true)).toBe(false);
    expect(matches('"v1"', 'W/"v1"', true)).toBe(false);
    expect(matches('*', 'W/"v1"', true)).toBe(true);
  });

  it('evaluates in the RFC\'s order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since', () => {
    const entry = stored(['etag', '"v1"', 'last-modified', LM]);
    const cases: Array<[Record<string, string>, string]> = [
      [{ 'if-none-match': '"v1"' }, 'not-modified'],
      [{ 'if-none-match': '"v0"' }, 'serve'],
      [{ 'if-none-match': '*' }, 'not-modified'],
      [{ 'if-modified-since': LM }, 'not-modified'],
      [{ 'if-modified-since': 'Thu, 22 Oct 2015 07:28:00 GMT' }, 'not-modified'],
      [{ 'if-modified-since': 'Tue, 20 Oct 2015 07:28:00 GMT' }, 'serve'],
      [{ 'if-modified-since': 'yesterday' }, 'serve'],
      // If-Modified-Since is ignored when If-None-Match is there
      [{ 'if-none-match': '"v0"', 'if-modified-since': LM }, 'serve'],
      [{ 'if-match': '"zzz"' }, 'failed'],
      [{ 'if-match': '"v1"' }, 'serve'],
      [{ 'if-match': '*' }, 'serve'],
      [{ 'if-match': '"v1"', 'if-none-match': '"v1"' }, 'not-modified'],
      [{ 'if-unmodified-since': 'Tue, 20 Oct 2015 07:28:00 GMT' }, 'failed'],
      [{ 'if-unmodified-since': LM }, 'serve'],
      // If-Unmodified-Since is ignored when If-Match is there
      [{ 'if-match': '"v1"', 'if-unmodified-since': 'Tue, 20 Oct 2015 07:28:00 GMT' }, 'serve'],
      [{ 'if-unmodified-since': 'not a date' }, 'serve'],
    ];
    for (const [headers, outcome] of cases) expect(evaluate(headers, entry), JSON.stringify(headers)).toBe(outcome);
  });

  it('falls back to Date, then to when it was stored, for If-Modified-Since without Last-Modified (RFC 9111 §4.3.2), and ignores If-Unmodified-Since then', () => {
    const dated = stored(['date', LM]);
    expect(evaluate({ 'if-modified-since': LM }, dated)).toBe('not-modified');
    expect(evaluate({ 'if-modified-since': 'Tue, 20 Oct 2015 07:28:00 GMT' }, dated)).toBe('serve');
    const undated = stored([]);
    expect(evaluate({ 'if-modified-since': 'Thu, 22 Oct 2015 07:28:00 GMT' }, undated)).toBe('not-modified');
    expect(evaluate({ 'if-modified-since': LM }, undated)).toBe('serve');
    expect(evaluate({ 'if-unmodified-since': 'Tue, 20 Oct 2015 07:28:00 GMT' }, undated)).toBe('serve');
  });

  it('ignores preconditions on a stored answer that is not a 2xx (RFC 9110 §13.2.1)', () => {
    const notFound = stored(['etag', '"v1"'], 404);
    expect(evaluate({ 'if-none-match': '"v1"' }, notFound)).toBe('serve');
    expect(evaluate({ 'if-match': '"zzz"' }, notFound)).toBe('serve');
  });
});

describe('conditional requests answered from a fresh entry', () => {
  const upstreamHead = ['content-type', 'text/plain', 'etag', '"v1"', 'last-modified', LM, 'cache-control', 'max-age=60', 'date', LM, 'vary', 'accept-language', 'x-other', 'o'];

  it('answers a matching If-None-Match or If-Modified-Since 304 from the store, with the 200\'s ETag, Cache-Control, Date and Vary, x-cache and age, and no body', async () => {
    const { up, handler } = setup({}, () => ({ headers: upstreamHead, body: 'hello' }));
    await send(handler);
    for (const headers of [{ 'if-none-match': '"v1"' }, { 'if-none-match': 'W/"v1"' }, { 'if-modified-since': LM }]) {
      const res = await send(handler, request({ headers: { host: 'api.test', ...headers } }));
      expect([res.status, res.body], JSON.stringify(headers)).toEqual([304, null]);
      expect(res.headers).toEqual(['etag', '"v1"', 'cache-control', 'max-age=60', 'date', LM, 'vary', 'accept-language', 'x-cache', 'HIT', 'age', '0']);
    }
    const head = await send(handler, request({ method: 'HEAD', headers: { host: 'api.test', 'if-none-match': '"v1"' } }));
    expect(head.status).toBe(304);
    const other = await send(handler, request({ headers: { host: 'api.test', 'if-none-match': '"v0"' } }));
    expect([other.status, other.xCache, other.body]).toEqual([200, 'HIT', 'hello']);
    expect(up.calls).toBe(1);
  });

  it('answers a failing If-Match or If-Unmodified-Since 412 PRECONDITION_FAILED from the store', async () => {
    const { up, handler } = setup({}, () => ({ headers: upstreamHead, body: 'hello' }));
    await send(handler);
    for (const headers of [{ 'if-match': '"zzz"' }, { 'if-unmodified-since': 'Tue, 20 Oct 2015 07:28:00 GMT' }]) {
      const err = await send(handler, request({ headers: { host: 'api.test', ...headers } })).then(() => null, (e: unknown) => e);
      expect(err, JSON.stringify(headers)).toBeInstanceOf(PreconditionFailedError);
      expect([(err as PreconditionFailedError).status, (err as PreconditionFailedError).code]).toEqual([412, 'PRECONDITION_FAILED']);
    }
    expect((await send(handler, request({ headers: { host: 'api.test', 'if-match': '"v1"' } }))).status).toBe(200);
    expect(up.calls).toBe(1);
  });

  it('answers a stale entry as before (its 200, whatever the validators), and sends the client\'s upstream on neither the miss nor the refresh (which sends the stored ETag)', async () => {
    const { clock, up, handler } = setup({}, (req, n) => (req.headers['if-none-match'] === '"v1"' && n > 1
      ? { status: 304, headers: ['etag', '"v1"'], body: null }
      : { headers: ['etag', '"v1"', 'cache-control', 'max-age=60, stale-while-revalidate=60'], body: 'hello' }));
    const miss = await send(handler, request({ headers: { host: 'api.test', 'if-none-match': '"v1"' } }));
    expect([miss.status, miss.xCache]).toEqual([304, 'MISS']);
    clock.advance(61_000);
    const stale = await send(handler, request({ headers: { host: 'api.test', 'if-none-match': '"v0"' } }));
    expect([stale.status, stale.xCache, stale.body]).toEqual([200, 'STALE', 'hello']);
    expect(up.seen.map((r) => r.headers['if-none-match'])).toEqual([undefined, '"v1"']);
  });
});

describe('only-if-cached (RFC 9111 §5.2.1.7)', () => {
  const onlyIfCached = (over: Partial<GatewayRequest> = {}): GatewayRequest => request({ headers: { host: 'api.test', 'cache-control': 'only-if-cached' }, ...over });

  it('answers a miss 504 GATEWAY_TIMEOUT without going upstream, for GET and HEAD, and an expired entry too', async () => {
    const { clock, up, handler } = setup({}, () => ({ headers: ['cache-control', 'max-age=60'], body: 'hello' }));
    for (const method of ['GET', 'HEAD']) {
      const err = await send(handler, onlyIfCached({ method })).then(() => null, (e: unknown) => e);
      expect(err, method).toBeInstanceOf(GatewayTimeoutError);
      expect((err as GatewayTimeoutError).headers).toEqual({ 'x-cache': 'MISS' });
    }
    expect(up.calls).toBe(0);
    await send(handler);
    const hit = await send(handler, onlyIfCached());
    expect([hit.status, hit.xCache, hit.body]).toEqual([200, 'HIT', 'hello']);
    clock.advance(61_000);
    await expect(send(handler, onlyIfCached())).rejects.toBeInstanceOf(GatewayTimeoutError);
    expect(up.calls).toBe(1);
  });

  it('answers 504 without going upstream when the request could use no stored response: with no-cache, no-store or Authorization', async () => {
    const { up, handler } = setup({}, () => ({ headers: ['cache-control', 'max-age=60'], body: 'hello' }));
    await send(handler);
    const cases: Array<Record<string, string>> = [
      { 'cache-control': 'only-if-cached, no-cache' },
      { 'cache-control': 'no-store, only-if-cached' },
      { 'cache-control': 'only-if-cached', authorization: 'Bearer t' },
    ];
    for (const headers of cases) {
      for (const method of ['GET', 'HEAD']) {
        const err = await send(handler, request({ method, headers: { host: 'api.test', ...headers } })).then(() => null, (e: unknown) => e);
        expect(err, `${method} ${JSON.stringify(headers)}`).toBeInstanceOf(GatewayTimeoutError);
        expect((err as GatewayTimeoutError).headers).toEqual({ 'x-cache': 'MISS' });
      }
    }
    expect(up.calls).toBe(1);
    // without only-if-cached they go upstream as before
    expect((await send(handler, request({ headers: { host: 'api.test', 'cache-control': 'no-cache' } }))).xCache).toBe('BYPASS');
    expect(up.calls).toBe(2);
  });
});

describe('vary records keep the invalidation mark through both stores\' encodings', () => {
  it('packs and encodes since and until, and reads a record without them', () => {
    const marked: CacheRecord = { kind: 'vary', names: ['accept-language'], since: 1_700_000_000_123, until: 1_700_000_060_000 };
    const plain: CacheRecord = { kind: 'vary', names: ['accept-language', 'accept-encoding'] };
    for (const rec of [marked, plain]) {
      expect(unpack(pack(rec))).toEqual(rec);
      expect(decodeRecord(encodeRecord(rec))).toEqual(rec);
    }
  });

  it('hides a variant stored in the same millisecond as the invalidation (it may have come first)', () => {
    const rec: CacheRecord = { kind: 'vary', names: [], since: 5_000 };
    const at = (storedAt: number) => ({ ...stored([]), storedAt });
    expect(current(rec, at(4_999))).toBeUndefined();
    expect(current(rec, at(5_000))).toBeUndefined();
    expect(current(rec, at(5_001))?.storedAt).toBe(5_001);
    expect(current({ kind: 'vary', names: [] }, at(1))?.storedAt).toBe(1);
  });
});
