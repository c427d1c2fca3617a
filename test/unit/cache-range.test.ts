import { Observable, Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { getHeader } from '../../lib/headers.ts';
import { cache } from '../../lib/stages/cache/cache.ts';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import { acceptingRanges, byteRange, rangeable, replayRange } from '../../lib/stages/cache/range.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest, respond } from '../support/request.ts';

const entry = (chunks: Uint8Array[], status = 200): CacheEntry => ({
  kind: 'entry', status, statusText: undefined, headers: ['content-type', 'text/plain', 'content-length', '12'], body: new BufferedBody(chunks), vary: [],
  storedAt: 0, initialAge: 0, freshUntil: 60_000, staleWhileRevalidate: 0, staleIfError: 0,
});

const request = (range: string, method = 'GET'): GatewayRequest => ({ method, headers: { range }, locals: {} }) as unknown as GatewayRequest;

describe('byteRange (RFC 9110 §14.1)', () => {
  it('reads one range, a suffix, an open range, and clamps to the body', () => {
    expect(byteRange('bytes=0-9', 36)).toEqual({ start: 0, end: 9 });
    expect(byteRange('bytes=-5', 36)).toEqual({ start: 31, end: 35 });
    expect(byteRange('bytes=30-', 36)).toEqual({ start: 30, end: 35 });
    expect(byteRange('bytes=30-99999999999999999999', 36)).toEqual({ start: 30, end: 35 });
  });

  it('is unsatisfiable when no range overlaps the body, and ignored (null) when malformed or several', () => {
    expect(byteRange('bytes=36-', 36)).toBe('unsatisfiable');
    expect(byteRange('bytes=-0', 36)).toBe('unsatisfiable');
    for (const f of ['bytes=0-1,3-4', 'bytes=4-1', 'bytes=x-1', 'bytes', 'octets=0-1', 'bytes=,', 'bytes=1']) expect(byteRange(f, 36), f).toBeNull();
  });
});

describe('replayRange', () => {
  it('answers the part as views of the stored chunks, across them, without copying', async () => {
    const a = Buffer.from('abcdef');
    const b = Buffer.from('ghijkl');
    const res = replayRange(entry([a, b]), request('bytes=4-7'), 'bytes=4-7', 'HIT', 0);
    expect(res.status).toBe(206);
    const chunks = (res.body as BufferedBody).chunks;
    expect(Buffer.concat(chunks).toString()).toBe('efgh');
    expect(chunks.map((c) => c.buffer)).toEqual([a.buffer, b.buffer]);
    expect(res.headers).toEqual(['content-type', 'text/plain', 'content-range', 'bytes 4-7/12', 'content-length', '4', 'x-cache', 'HIT', 'age', '0']);
  });

  it('leaves an entry that is not a 200 whole', () => {
    const res = replayRange(entry([Buffer.from('abc')], 404), request('bytes=0-0'), 'bytes=0-0', 'HIT', 0);
    expect(res.status).toBe(404);
  });
});

describe('a coded entry (review RB)', () => {
  const coded = (etag: string): CacheEntry => ({
    ...entry([Buffer.from('0123456789ab')]),
    headers: ['content-type', 'text/plain', 'content-encoding', 'gzip', 'etag', etag, 'content-length', '12'],
  });

  it('with no strong ETag is never cut: a Range gets the 200 whole', () => {
    for (const etag of ['W/"a"', 'junk']) {
      expect([etag, replayRange(coded(etag), request('bytes=0-1'), 'bytes=0-1', 'HIT', 0).status]).toEqual([etag, 200]);
      expect([etag, replayRange(coded(etag), request('bytes=50-'), 'bytes=50-', 'HIT', 0).status]).toEqual([etag, 200]);
    }
    const bare = { ...coded('"a"'), headers: ['content-encoding', 'br'] };
    expect(replayRange(bare, request('bytes=0-1'), 'bytes=0-1', 'HIT', 0).status).toBe(200);
  });

  it("with a strong ETag is cut; its 416 keeps the entry's Content-Type, not its Content-Encoding", () => {
    expect(replayRange(coded('"a"'), request('bytes=0-1'), 'bytes=0-1', 'HIT', 0).status).toBe(206);
    const none = replayRange(coded('"a"'), request('bytes=50-'), 'bytes=50-', 'HIT', 0);
    expect([none.status, none.body]).toEqual([416, null]);
    expect(none.headers).toEqual(['content-type', 'text/plain', 'etag', '"a"', 'content-range', 'bytes */12', 'content-length', '0', 'x-cache', 'HIT', 'age', '0']);
  });

  it('rangeable: identity or no coding, or a strong ETag', () => {
    expect(rangeable(['content-type', 'text/plain'])).toBe(true);
    expect(rangeable(['content-encoding', 'identity'])).toBe(true);
    expect(rangeable(['content-encoding', 'gzip', 'etag', '"x"'])).toBe(true);
    expect(rangeable(['content-encoding', 'gzip', 'etag', 'W/"x"'])).toBe(false);
    expect(rangeable(['content-encoding', 'gzip'])).toBe(false);
  });
});

describe('acceptingRanges', () => {
  it('adds Accept-Ranges: bytes, or replaces what the upstream said', () => {
    expect(acceptingRanges(['etag', '"a"'])).toEqual(['etag', '"a"', 'accept-ranges', 'bytes']);
    expect(acceptingRanges(['accept-ranges', 'none', 'etag', '"a"'])).toEqual(['accept-ranges', 'bytes', 'etag', '"a"']);
  });
});

/** An upstream whose answers wait for `release`: a 206 to a Range, else the 200 (`hold` says which wait). */
function heldUpstream(hold: (req: GatewayRequest) => boolean) {
  const release = new Subject<void>();
  const seen: Array<string | undefined> = [];
  const BODY = 'abcdefghij';
  const handler: Handler = (req) => new Observable<GatewayResponse>((s) => {
    seen.push(req.headers.range);
    const answer = (): void => {
      const range = req.headers.range;
      s.next(range !== undefined
        ? { status: 206, headers: ['content-range', 'bytes 0-1/10', 'cache-control', 'max-age=60'], body: BufferedBody.of('ab') }
        : { status: 200, headers: ['cache-control', 'max-age=60', 'content-type', 'text/plain', 'etag', '"e"'], body: BufferedBody.of(BODY) });
      s.complete();
    };
    if (!hold(req)) {
      answer();
      return undefined;
    }
    const sub = release.subscribe(answer);
    return () => sub.unsubscribe();
  });
  return { release, seen, handler };
}

const cached = (headers: Record<string, string> = {}): GatewayRequest => gatewayRequest({ path: '/r', headers: { host: 'api.test', ...headers } });

async function answer(h: Handler, req: GatewayRequest) {
  const { response: r, body } = await respond(h, req);
  return [r.status, getHeader(r.headers, 'x-cache'), getHeader(r.headers, 'content-range'), body === null ? null : body.toString()];
}

describe('coalescing and Range (review RB)', () => {
  it('a GET with Range does not lead: a plain GET arriving meanwhile goes upstream and is stored, not held behind the 206', async () => {
    const up = heldUpstream((req) => req.headers.range !== undefined);
    const handler = cache({ clock: { now: () => 0 } })(up.handler);
    const part = answer(handler, cached({ range: 'bytes=0-1' }));
    // Before: the plain GET waited for the Range leader, whose upstream waits here: it never answered.
    expect(await answer(handler, cached())).toEqual([200, 'MISS', undefined, 'abcdefghij']);
    up.release.next();
    expect(await part).toEqual([206, 'MISS', 'bytes 0-1/10', 'ab']);
    expect(await answer(handler, cached())).toEqual([200, 'HIT', undefined, 'abcdefghij']);
    expect(up.seen).toEqual(['bytes=0-1', undefined]);
  });

  it("a coalesced waiter with Range gets its part of the leader's stored 200, a 416 past its end", async () => {
    const up = heldUpstream(() => true);
    const handler = cache({ clock: { now: () => 0 } })(up.handler);
    const lead = answer(handler, cached());
    const part = answer(handler, cached({ range: 'bytes=2-4' }));
    const none = answer(handler, cached({ range: 'bytes=20-' }));
    const ifRange = answer(handler, cached({ range: 'bytes=2-4', 'if-range': '"other"' }));
    up.release.next();
    expect(await lead).toEqual([200, 'MISS', undefined, 'abcdefghij']);
    expect(await part).toEqual([206, 'HIT', 'bytes 2-4/10', 'cde']);
    expect(await none).toEqual([416, 'HIT', 'bytes */10', null]);
    expect(await ifRange).toEqual([200, 'HIT', undefined, 'abcdefghij']);
    expect(up.seen).toEqual([undefined]);
  });
});
