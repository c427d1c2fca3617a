import type { GatewayRequest, GatewayResponse } from '../../types.ts';
import { has, parseCacheControl, storageDirectives } from './cache-control.ts';
import { headerValue, storableHeaders } from './entry.ts';
import { freshnessOf, httpDate, retention, type Freshness, type FreshnessPolicy } from './freshness.ts';
import { parseVary } from './key.ts';
import { acceptingRanges, rangeable } from './range.ts';

/** Server-Sent Events: a live stream, never stored or shared. */
const EVENT_STREAM = 'text/event-stream';

/**
 * What to do with a request: `bypass` goes upstream and stores nothing
 * (an unsafe method, a stream, Authorization, a body, a client `no-store`);
 * `refresh` skips the lookup (client `no-cache`) but may store the answer;
 * `lookup` consults the cache; `unavailable` is a GET or HEAD with
 * `only-if-cached` that `no-cache`, `no-store`, its Authorization or body would
 * send past the store: no stored response can answer it, so it gets the
 * 504 a miss gets (RFC 9111 §5.2.1.7).
 */
export type RequestMode = 'bypass' | 'refresh' | 'lookup' | 'unavailable';

export function requestMode(req: GatewayRequest, cacheAuthorized: boolean): RequestMode {
  if (req.method !== 'GET' && req.method !== 'HEAD') return 'bypass';
  // Streams are never shared: a WebSocket handshake, or a client asking for Server-Sent Events.
  if (req.headers.upgrade !== undefined || req.headers.accept?.includes(EVENT_STREAM) === true) return 'bypass';
  // A GET with a body (a search API's query, or a "fat GET" poisoning the entry): the key
  // does not hold the body, so its answer is nobody else's. Envoy's cache filter passes it too.
  if (req.body !== null) return onlyIfCached(req) ? 'unavailable' : 'bypass';
  // A token the auth stage verified (and may have stripped) still makes the request personal.
  if (!cacheAuthorized && (req.headers.authorization !== undefined || req.locals.claims !== undefined)) return onlyIfCached(req) ? 'unavailable' : 'bypass';
  const raw = req.headers['cache-control'];
  if (raw === undefined) {
    return req.headers.pragma?.toLowerCase().includes('no-cache') === true ? 'refresh' : 'lookup';
  }
  const cc = parseCacheControl(raw);
  if (has(cc, 'no-store')) return has(cc, 'only-if-cached') ? 'unavailable' : 'bypass';
  if (has(cc, 'no-cache')) return has(cc, 'only-if-cached') ? 'unavailable' : 'refresh';
  return 'lookup';
}

/**
 * Statuses never stored, even when listed: a 206 is part of a response
 * (RFC 9111 §3.3: stored only to be combined), a 304 only updates a stored
 * one (§4.3.4). Stored under the resource's key, either would answer later
 * plain GETs. nginx's cache stores neither.
 */
export const NEVER_STORED: ReadonlySet<number> = new Set([206, 304]);

/**
 * The client's `Cache-Control: only-if-cached` (RFC 9111 §5.2.1.7): it wants
 * a stored response or a 504, never a request upstream. Read on a miss only.
 */
export function onlyIfCached(req: GatewayRequest): boolean {
  const raw = req.headers['cache-control'];
  return raw !== undefined && has(parseCacheControl(raw), 'only-if-cached');
}

/** The safe methods (RFC 9110 §9.2.1); a non-error answer to any other invalidates the URL's entry (RFC 9111 §4.4). */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

export function invalidates(req: GatewayRequest): boolean {
  return !SAFE_METHODS.has(req.method);
}

/**
 * An answer that replaces what is stored even when it may not be stored
 * itself (`no-store`, `private`, a `Set-Cookie`, a status not listed, too
 * large): not an error (2xx, 3xx, as for an unsafe method's invalidation),
 * or a `404`/`410` (the resource is gone). A 5xx, a `429` and other 4xx
 * leave the entry to a later try. A `206` (a part, the answer to a Range
 * request) and a `304` (about the client's own copy) are never stored
 * whatever they say: they supersede nothing.
 */
export function supersedes(status: number): boolean {
  return (status < 400 && status !== 206 && status !== 304) || status === 404 || status === 410;
}

export interface StoragePolicy extends FreshnessPolicy {
  readonly statuses: ReadonlySet<number>;
}

/** What a storable response becomes, minus its body. */
export interface StoragePlan {
  readonly freshness: Freshness;
  readonly headers: string[];
  readonly vary: readonly string[];
}

/**
 * Whether a response arriving at `now` may be stored, and how. Not stored: a
 * status outside the list, a 206 or a 304 (`NEVER_STORED`, listed or not),
 * `no-store`, `private`, `no-cache` (it could only be served after
 * revalidation, which this cache does not do), `Set-Cookie`,
 * `text/event-stream`,
 * `Vary: *`, and anything with no time left to live.
 */
export function planStorage(res: GatewayResponse, now: number, policy: StoragePolicy): StoragePlan | null {
  if (!policy.statuses.has(res.status) || NEVER_STORED.has(res.status)) return null;
  const headers = res.headers;
  if (headerValue(headers, 'content-type')?.toLowerCase().includes(EVENT_STREAM) === true) return null;
  const cc = parseCacheControl(headerValue(headers, 'cache-control'));
  if (storageDirectives(cc).refuse) return null;
  if (headerValue(headers, 'set-cookie') !== undefined) return null;
  const vary = parseVary(headerValue(headers, 'vary'));
  if (vary === '*') return null;
  const expires = headerValue(headers, 'expires');
  const freshness = freshnessOf(cc, expires, headerValue(headers, 'date'), headerValue(headers, 'age'), now, policy);
  if (retention(freshness, now) <= 0) return null;
  // A stored 200 answers byte ranges (range.ts), unless coded without a strong ETag: its hits say so.
  const stored = res.status === 200 && rangeable(headers) ? acceptingRanges(storableHeaders(headers)) : storableHeaders(headers);
  if (expires !== undefined) {
    // Restated on hits only when Expires gave the lifetime and maxTtl did not cut it: the cap is on what
    // this cache keeps, not the upstream's word to pass downstream (a miss passes its Expires as it came; review RG, L1).
    const exp = httpDate(expires);
    const date = headerValue(headers, 'date');
    const uncapped = policy.maxTtl === null || exp - (date === undefined ? now : httpDate(date)) <= policy.maxTtl;
    placeExpires(stored, storageDirectives(cc).lifetime === undefined && !Number.isNaN(exp) && uncapped);
  }
  return { freshness, headers: stored, vary };
}

/**
 * Puts the one `Expires` line last when the freshness came from it, where
 * hits restate it against the gateway's `Date` (freshness.ts's
 * `expiresLast`); otherwise (`max-age` or `s-maxage` rules, which
 * downstream caches prefer) moves it off the end, so it is left as it came.
 * The order of lines of different names means nothing (RFC 9110 §5.3).
 */
function placeExpires(headers: string[], restate: boolean): void {
  const n = headers.length;
  const at = headers.indexOf('expires');
  if (at < 0 || at % 2 !== 0) return;
  if (restate ? at === n - 2 : at !== n - 2 || n < 4) return;
  const value = headers[at + 1]!;
  if (restate) {
    headers.copyWithin(at, at + 2);
    headers[n - 2] = 'expires';
    headers[n - 1] = value;
  } else {
    // last, and not to be restated: swap with the line before it
    headers[at] = headers[at - 2]!;
    headers[at + 1] = headers[at - 1]!;
    headers[at - 2] = 'expires';
    headers[at - 1] = value;
  }
}
