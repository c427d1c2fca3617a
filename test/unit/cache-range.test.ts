import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import { acceptingRanges, byteRange, replayRange } from '../../lib/stages/cache/range.ts';
import type { GatewayRequest } from '../../lib/types.ts';

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

describe('acceptingRanges', () => {
  it('adds Accept-Ranges: bytes, or replaces what the upstream said', () => {
    expect(acceptingRanges(['etag', '"a"'])).toEqual(['etag', '"a"', 'accept-ranges', 'bytes']);
    expect(acceptingRanges(['accept-ranges', 'none', 'etag', '"a"'])).toEqual(['accept-ranges', 'bytes', 'etag', '"a"']);
  });
});
