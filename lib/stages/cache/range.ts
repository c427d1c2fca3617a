import { BufferedBody } from '../../body.ts';
import type { GatewayRequest, GatewayResponse } from '../../types.ts';
import { matches } from './conditional.ts';
import { headerValue, type CacheEntry } from './entry.ts';
import { ageSeconds, expiresLast, httpDate, restatedExpires } from './freshness.ts';
import { replay, type CacheStatus } from './replay.ts';

/**
 * Byte ranges answered from a stored 200 (RFC 9110 §14), as nginx's range
 * filter answers them from its cache and Envoy's cache filter does: one
 * satisfiable `bytes=` range gets a 206 with `Content-Range` and those
 * bytes (views of the entry's chunks, no copy); a range set none of whose
 * ranges overlap the body a 416 with `Content-Range: bytes *\/len` and no
 * body (the stored headers but the length and coding: its `Vary`, and its
 * `Content-Type`, by which the compression stage adds its own `Vary`).
 * Everything else is the stored 200 whole: several satisfiable ranges
 * (no multipart/byteranges), a range unit other than bytes, a malformed
 * set (RFC 9110 §14.2 lets a server ignore it; nginx answers 416), an
 * `If-Range` that does not match, an entry that is not a 200 or has no body.
 * Only hits come here: a Range on a miss goes upstream as it came, and the
 * 206 it gets is never stored (policy.ts NEVER_STORED; miss.ts).
 */

/** A satisfiable range: `start` to `end`, both included (as Content-Range writes them). */
export interface ByteRange { readonly start: number; readonly end: number }

/** What a `Range` field makes of a body of `length` bytes: one range, 416, or the whole body (null). */
export type RangeOutcome = ByteRange | 'unsatisfiable' | null;

const DIGITS = /^[0-9]+$/;

/**
 * The `Range` field `field` against a body of `length` bytes (RFC 9110
 * §14.1.1-2): the one satisfiable range, `unsatisfiable` when the set is
 * valid and no range in it is, null to serve the whole body.
 */
export function byteRange(field: string, length: number): RangeOutcome {
  const eq = field.indexOf('=');
  if (eq < 0 || field.slice(0, eq).trim().toLowerCase() !== 'bytes') return null;
  let found: ByteRange | null = null;
  let count = 0;
  let specs = 0;
  for (const raw of field.slice(eq + 1).split(',')) {
    const spec = raw.trim();
    if (spec === '') continue; // empty list elements are allowed (RFC 9110 §5.6.1)
    specs++;
    const dash = spec.indexOf('-');
    if (dash < 0) return null;
    const first = spec.slice(0, dash).trim();
    const last = spec.slice(dash + 1).trim();
    let start: number;
    let end: number;
    if (first === '') {
      // suffix-range: the last n bytes, all of them when n is larger
      if (!DIGITS.test(last)) return null;
      const n = Number(last);
      if (n === 0) continue;
      start = Math.max(0, length - n);
      end = length - 1;
    } else {
      if (!DIGITS.test(first) || (last !== '' && !DIGITS.test(last))) return null;
      start = Number(first);
      end = last === '' ? Infinity : Number(last);
      if (end < start) return null; // invalid (§14.1.1): ignored
      if (start >= length) continue;
      if (end >= length) end = length - 1;
    }
    count++;
    found = { start, end };
  }
  if (specs === 0) return null;
  if (count === 0) return 'unsatisfiable';
  return count === 1 ? found : null;
}

/**
 * Whether `If-Range` lets the range through (RFC 9110 §13.1.5): an
 * entity-tag equal to the entry's by strong comparison (a weak one never
 * matches), or an HTTP-date equal to its `Last-Modified`.
 */
export function ifRangeHolds(field: string, entry: CacheEntry): boolean {
  const value = field.trim();
  if (value.endsWith('"')) {
    // one entity-tag, not a list: a comma inside it is part of the opaque-tag
    return !value.startsWith('W/') && matches(value, headerValue(entry.headers, 'etag'), true);
  }
  const date = httpDate(value);
  return !Number.isNaN(date) && date === httpDate(headerValue(entry.headers, 'last-modified') ?? '');
}

/** The entry's body bytes `start` to `end` (included), as views of its chunks. */
function slice(chunks: readonly Uint8Array[], start: number, end: number): BufferedBody {
  const out: Uint8Array[] = [];
  let at = 0;
  for (const c of chunks) {
    const from = Math.max(start, at);
    const to = Math.min(end + 1, at + c.byteLength);
    if (from < to) out.push(from === at && to === at + c.byteLength ? c : c.subarray(from - at, to - at));
    at += c.byteLength;
    if (at > end) break;
  }
  return new BufferedBody(out);
}

/**
 * The stored headers minus the length (the part's or 0 is given instead),
 * plus `content-range`, `x-cache` and `age`.
 */
function partHeaders(entry: CacheEntry, contentRange: string, length: number, status: CacheStatus, now: number, whole: boolean): string[] {
  const stored = entry.headers;
  const out: string[] = [];
  const n = expiresLast(stored) ? stored.length - 2 : stored.length;
  for (let i = 0; i < n; i += 2) {
    const name = stored[i]!;
    if (name === 'content-length') continue;
    // A 416 has no body: its coding stays out. Its type stays, as a HEAD's does: the compression stage
    // decides by it whether the 200 carries Vary: Accept-Encoding, and so the 416 (RFC 9110 §15.3.7).
    if (!whole && name === 'content-encoding') continue;
    out.push(name, stored[i + 1]!);
  }
  if (n < stored.length) out.push('expires', restatedExpires(entry, now));
  out.push('content-range', contentRange, 'content-length', String(length), 'x-cache', status, 'age', String(ageSeconds(entry, now)));
  return out;
}

/**
 * A hit for a request with a `Range` field: the 206 or 416 `byteRange`
 * decides on a stored 200 with a body when `If-Range`, if any, holds;
 * otherwise the stored answer as `replay` makes it, as for a HEAD, which
 * ignores Range.
 */
export function replayRange(entry: CacheEntry, req: GatewayRequest, range: string, status: CacheStatus, now: number): GatewayResponse {
  const body = entry.body;
  const length = body === null ? 0 : body.length;
  // Range is a GET's only (RFC 9110 §14.2): a HEAD gets the 200's headers whole.
  if (entry.status !== 200 || length === 0 || req.method !== 'GET' || !rangeable(entry.headers)) return replay(entry, req.method, status, now);
  const ifRange = req.headers['if-range'];
  if (ifRange !== undefined && !ifRangeHolds(ifRange, entry)) return replay(entry, req.method, status, now);
  const outcome = byteRange(range, length);
  if (outcome === null) return replay(entry, req.method, status, now);
  if (outcome === 'unsatisfiable') {
    return { status: 416, headers: partHeaders(entry, `bytes */${length}`, 0, status, now, false), body: null };
  }
  const { start, end } = outcome;
  return {
    status: 206,
    headers: partHeaders(entry, `bytes ${start}-${end}/${length}`, end - start + 1, status, now, true),
    body: slice(body!.chunks, start, end),
  };
}

/**
 * Whether a stored 200 with `headers` may be cut into ranges: not when it
 * has a `Content-Encoding` and no strong `ETag`. The same URL is stored in
 * other codings too (Vary: Accept-Encoding, or an upstream that changes its
 * mind), and a client joining parts of two codings gets neither; only a
 * strong tag, which If-Range checks, tells the parts apart (RFC 9110 §8.8.1,
 * §13.1.5).
 */
export function rangeable(headers: readonly string[]): boolean {
  const coding = headerValue(headers, 'content-encoding');
  if (coding === undefined || coding.trim().toLowerCase() === 'identity') return true;
  const etag = headerValue(headers, 'etag');
  return etag !== undefined && etag.trimStart().startsWith('"');
}

/**
 * The headers of a stored 200 with `Accept-Ranges: bytes`, as nginx sends
 * it on what it answers from its cache: hits of it answer ranges whatever
 * the upstream said (an upstream's `none` is replaced, as nginx does).
 * Changes `headers` (the entry's own copy) in place.
 */
export function acceptingRanges(headers: string[]): string[] {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'accept-ranges') {
      headers[i + 1] = 'bytes';
      return headers;
    }
  }
  headers.push('accept-ranges', 'bytes');
  return headers;
}
