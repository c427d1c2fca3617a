import { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { PreconditionFailedError } from '../../lib/errors.ts';
import { getHeader } from '../../lib/headers.ts';
import { cache, type CacheOptions } from '../../lib/stages/cache/cache.ts';
import { withoutValidators } from '../../lib/stages/cache/conditional.ts';
import { backgroundRequest } from '../../lib/stages/cache/replay.ts';
import type { Body, GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { callNow, gatewayRequest, respond } from '../support/request.ts';

/**
 * A miss the cache may store sends no validators upstream and answers the
 * client's preconditions from the 200 it stores, as nginx's proxy_cache does
 * (ngx_http_proxy_cache_headers); a background refresh sends none of the
 * client's either (the stored entry's instead: cache-revalidate.test.ts).
 * Before, the validators went upstream, the upstream answered 304, nothing
 * was stored, and every later plain GET missed.
 */

const LM = 'Wed, 21 Oct 2015 07:28:00 GMT';
const HEAD = ['etag', '"v1"', 'last-modified', LM, 'cache-control', 'max-age=60', 'date', LM, 'content-type', 'text/plain'];
const VALIDATORS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'];

function request(headers: Record<string, string> = {}, over: Partial<GatewayRequest> = {}): GatewayRequest {
  return gatewayRequest({ path: '/items', headers: { host: 'api.test', ...headers }, ...over });
}

interface Reply { status?: number; headers?: string[]; body?: string | null }

/** An upstream as HTTP would answer: 304 to a matching If-None-Match, else `reply`; keeps the requests it got. */
function setup(options: CacheOptions = {}, reply: (n: number) => Reply = () => ({ headers: HEAD, body: 'hello' })) {
  let t = 1_000_000;
  const clock = { now: () => t, advance: (ms: number) => { t += ms; } };
  const seen: GatewayRequest[] = [];
  const up = ((req: GatewayRequest) => new Observable<GatewayResponse>((s) => {
    seen.push(req);
    const r = req.headers['if-none-match'] === '"v1"'
      ? { status: 304, headers: ['etag', '"v1"'], body: null }
      : reply(seen.length);
    s.next({ status: r.status ?? 200, headers: r.headers ?? [], body: r.body === null || r.body === undefined ? null : BufferedBody.of(r.body) });
    s.complete();
  })) as Handler;
  return { clock, seen, handler: cache({ clock, ...options })(up) };
}

async function send(h: Handler, req: GatewayRequest) {
  const { response: r, body: b } = await respond(h, req);
  return { status: r.status, headers: r.headers, body: b === null ? null : b.toString(), xCache: getHeader(r.headers, 'x-cache') };
}

const sentValidators = (seen: GatewayRequest[]): string[][] => seen.map((r) => VALIDATORS.filter((v) => r.headers[v] !== undefined));

describe('a miss the cache may store sends no validators upstream', () => {
  it('answers a matching If-None-Match 304 from the 200 it stored (the §15.4.5 fields, x-cache MISS), and the next plain GET is a HIT', async () => {
    const { seen, handler } = setup();
    const req = request({ 'if-none-match': 'W/"v1"' });
    const first = await send(handler, req);
    expect([first.status, first.body]).toEqual([304, null]);
    expect(first.headers).toEqual(['etag', '"v1"', 'cache-control', 'max-age=60', 'date', LM, 'x-cache', 'MISS', 'age', '0']);
    expect(sentValidators(seen)).toEqual([[]]);
    // the client's request is left as it came
    expect(req.headers['if-none-match']).toBe('W/"v1"');
    const second = await send(handler, request());
    expect([second.status, second.xCache, second.body]).toEqual([200, 'HIT', 'hello']);
    expect(seen).toHaveLength(1);
  });

  it('gives the whole stored 200 to a client whose If-None-Match does not match, and an unchanged If-Modified-Since a 304', async () => {
    const { seen, handler } = setup();
    const other = await send(handler, request({ 'if-none-match': '"v0"' }));
    expect([other.status, other.xCache, other.body]).toEqual([200, 'MISS', 'hello']);
    expect((await send(handler, request({ 'if-modified-since': LM }))).status).toBe(304);
    expect(seen).toHaveLength(1);
  });

  it('answers a failing If-Match or If-Unmodified-Since 412 once the 200 is stored', async () => {
    for (const headers of [{ 'if-match': '"zzz"' }, { 'if-unmodified-since': 'Tue, 20 Oct 2015 07:28:00 GMT' }]) {
      const { seen, handler } = setup();
      const err = await send(handler, request(headers)).then(() => null, (e: unknown) => e);
      expect(err, JSON.stringify(headers)).toBeInstanceOf(PreconditionFailedError);
      expect((err as PreconditionFailedError).headers).toEqual({ 'x-cache': 'MISS' });
      expect(sentValidators(seen)).toEqual([[]]);
      expect((await send(handler, request())).xCache).toBe('HIT');
    }
  });

  it('stores a large body whole before answering the 304', async () => {
    const { seen, handler } = setup({}, () => ({ headers: HEAD, body: 'x'.repeat(100_000) }));
    expect((await send(handler, request({ 'if-none-match': '"v1"' }))).status).toBe(304);
    const hit = await send(handler, request());
    expect([hit.xCache, hit.body?.length]).toEqual(['HIT', 100_000]);
    expect(seen).toHaveLength(1);
  });

  it('answers the client\'s preconditions from an upstream answer it does not store, as the upstream would have', async () => {
    const unstored: [string, CacheOptions, string[]][] = [
      ['no-store', {}, ['etag', '"v1"', 'cache-control', 'no-store']],
      ['private', {}, ['etag', '"v1"', 'cache-control', 'private, max-age=60']],
      ['set-cookie', {}, [...HEAD, 'set-cookie', 'a=b']],
      ['over maxEntrySize', { maxEntrySize: 3 }, HEAD],
    ];
    for (const [what, options, headers] of unstored) {
      const { seen, handler } = setup(options, () => ({ headers, body: 'hello' }));
      const same = await send(handler, request({ 'if-none-match': '"v1"' }));
      expect([same.status, same.xCache, same.body], what).toEqual([304, 'MISS', null]);
      expect(same.headers.slice(0, 2), what).toEqual(['etag', '"v1"']);
      const err = await send(handler, request({ 'if-match': '"v0"' })).then(() => null, (e: unknown) => e);
      expect(err, what).toBeInstanceOf(PreconditionFailedError);
      const other = await send(handler, request({ 'if-none-match': '"v0"' }));
      expect([other.status, other.xCache, other.body], what).toEqual([200, 'MISS', 'hello']);
      expect(sentValidators(seen), what).toEqual([[], [], []]);
    }
  });

  it('gives the client an unstored answer as it is when its preconditions do not decide it (a 404)', async () => {
    const { handler } = setup({}, () => ({ status: 404, headers: ['etag', '"v1"', 'cache-control', 'no-store'], body: 'gone' }));
    const res = await send(handler, request({ 'if-none-match': '"v1"' }));
    expect([res.status, res.xCache, res.body]).toEqual([404, 'MISS', 'gone']);
  });

  it('keeps the validators where nothing is stored: a HEAD miss, a Range request, a request with Authorization', async () => {
    for (const extra of [{ method: 'HEAD' }, { headers: { host: 'api.test', range: 'bytes=0-1', 'if-none-match': '"v1"' } }, { headers: { host: 'api.test', authorization: 'Bearer t', 'if-none-match': '"v1"' } }]) {
      const { seen, handler } = setup();
      const res = await send(handler, request({ 'if-none-match': '"v1"' }, extra));
      expect(res.status, JSON.stringify(extra)).toBe(304);
      expect(sentValidators(seen)).toEqual([['if-none-match']]);
    }
  });

  it('sends a held 304 or 412 as soon as the body outgrows maxEntrySize, and stops reading the upstream body', () => {
    for (const [headers, status] of [[{ 'if-none-match': '"v1"' }, 304], [{ 'if-match': '"v0"' }, 412]] as const) {
      let destroyed = false;
      let unsubscribed = false;
      // a chunked body: one chunk over the limit, then nothing until it is read on
      const body: Body = { length: null, pipe: (sink) => { sink.write(Buffer.from('0123456789')); }, resume: () => {}, destroy: () => { destroyed = true; } };
      const up = (() => new Observable<GatewayResponse>((s) => {
        s.next({ status: 200, headers: HEAD, body });
        return () => { unsubscribed = true; };
      })) as Handler;
      const out = callNow(cache({ maxEntrySize: 5 })(up), request(headers));
      expect(out.status, JSON.stringify(headers)).toBe(status);
      expect([destroyed, unsubscribed], JSON.stringify(headers)).toEqual([true, true]);
    }
  });

  it('answers a coalesced waiter\'s If-None-Match from the leader\'s stored 200', async () => {
    let release: (() => void) | undefined;
    const seen: GatewayRequest[] = [];
    const up = ((req: GatewayRequest) => new Observable<GatewayResponse>((s) => {
      seen.push(req);
      release = () => {
        s.next({ status: 200, headers: HEAD, body: BufferedBody.of('hello') });
        s.complete();
      };
    })) as Handler;
    const handler = cache()(up);
    const leader = send(handler, request());
    const waiter = send(handler, request({ 'if-none-match': '"v1"' }));
    release!();
    expect((await leader).status).toBe(200);
    const w = await waiter;
    expect([w.status, w.xCache]).toEqual([304, 'HIT']);
    expect(seen).toHaveLength(1);
  });
});

describe('the background refresh of stale-while-revalidate', () => {
  it('sends the stored entry\'s validators, never the client\'s, and the 304 freshens the entry without a body', async () => {
    const { clock, seen, handler } = setup({}, (n) => ({ headers: [...HEAD, 'cache-control', 'stale-while-revalidate=60'], body: `v${n}` }));
    await send(handler, request());
    clock.advance(61_000);
    const stale = await send(handler, request({ 'if-none-match': '"v0"', 'if-modified-since': 'Thu, 01 Jan 2015 00:00:00 GMT' }));
    expect([stale.status, stale.xCache, stale.body]).toEqual([200, 'STALE', 'v1']);
    expect(seen.map((r) => [r.headers['if-none-match'], r.headers['if-modified-since']])).toEqual([[undefined, undefined], ['"v1"', LM]]);
    const freshened = await send(handler, request());
    expect([freshened.xCache, freshened.body]).toEqual(['HIT', 'v1']);
    expect(seen).toHaveLength(2);
  });

  it('keeps a bare ? and leaves the client\'s headers as they are', () => {
    const req = request({ 'if-none-match': '"v1"', 'if-match': '"v1"', accept: 'text/plain' }, { emptyQuery: true });
    const bg = backgroundRequest(req);
    expect([bg.emptyQuery, bg.headers]).toEqual([true, { host: 'api.test', accept: 'text/plain' }]);
    expect(backgroundRequest(request()).emptyQuery).toBe(false);
    expect(req.headers['if-none-match']).toBe('"v1"');
  });

  it('keeps the client address and the trusted-proxy mark, so the refresh forwards what the client\'s request did', () => {
    const req = request({ 'x-forwarded-proto': 'https' }, { viaTrustedProxy: true, clientAddress: '203.0.113.7' });
    const bg = backgroundRequest(req);
    expect([bg.viaTrustedProxy, bg.clientAddress, bg.method, bg.body]).toEqual([true, '203.0.113.7', 'GET', null]);
    expect(bg.headers['x-forwarded-proto']).toBe('https');
    expect(bg.locals).not.toBe(req.locals);
  });
});

describe('withoutValidators', () => {
  it('drops exactly the four validators into a new object', () => {
    const h = { 'if-none-match': 'a', 'if-modified-since': 'b', 'if-match': 'c', 'if-unmodified-since': 'd', 'if-range': 'e', range: 'bytes=0-1', x: 'y' };
    const out = withoutValidators(h);
    expect(out).toEqual({ 'if-range': 'e', range: 'bytes=0-1', x: 'y' });
    expect(out).not.toBe(h);
    expect(Object.keys(h)).toHaveLength(7);
  });
});
