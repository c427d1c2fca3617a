import type { Subscriber } from 'rxjs';
import { PreconditionFailedError } from '../../errors.ts';
import type { Body, GatewayRequest, GatewayResponse, RequestHeaders } from '../../types.ts';
import { headerValue, type CacheEntry } from './entry.ts';
import { ageSeconds, expiresLast, httpDate, restatedExpires } from './freshness.ts';
import type { CacheStatus } from './replay.ts';

/**
 * Conditional requests answered from a fresh entry (RFC 9110 §13.2, RFC
 * 9111 §4.3.2), as nginx's not_modified filter answers them from its cache:
 * a matching `If-None-Match` or an unchanged `If-Modified-Since` gets a 304,
 * a failing `If-Match` or `If-Unmodified-Since` a 412. A stale entry is
 * served as it is. A miss the cache may store (an expired entry's too)
 * sends none of them upstream (`withoutValidators`; an expired entry's own
 * validators go instead, revalidation.ts) and answers them from the 200
 * it gets, stored or not, or from the entry a 304 freshened (miss.ts).
 */

/** The fields a 304 carries when the 200 would (RFC 9110 §15.4.5). */
const NOT_MODIFIED_FIELDS = new Set(['cache-control', 'content-location', 'date', 'etag', 'expires', 'vary']);

/**
 * Whether the request has a precondition. Four reads of headers a request
 * almost never has; a hit without one does nothing else here.
 */
export function hasPreconditions(h: RequestHeaders): boolean {
  return h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined
    || h['if-match'] !== undefined || h['if-unmodified-since'] !== undefined;
}

/**
 * `headers` without the client's validators, for the upstream request of a
 * miss the cache may store and of a background refresh: with them the
 * upstream answers 304, which is not stored, so a cache behind browsers that
 * revalidate would never fill. nginx's proxy_cache clears the same four
 * (ngx_http_proxy_cache_headers). A new object: the client's stays as it is.
 */
export function withoutValidators(headers: RequestHeaders): RequestHeaders {
  const out: RequestHeaders = {};
  for (const name in headers) {
    if (name !== 'if-none-match' && name !== 'if-modified-since' && name !== 'if-match' && name !== 'if-unmodified-since') out[name] = headers[name]!;
  }
  return out;
}

/** What the preconditions make of a hit: the stored answer, a 304, or a 412. */
export type Precondition = 'serve' | 'not-modified' | 'failed';

/** A 304 or 412 waiting for the stored response's body to end (miss.ts's `hold`). */
export interface Held {
  readonly outcome: Exclude<Precondition, 'serve'>;
  readonly head: CacheEntry; // the entry minus its body: what the answer is made from
  /** The upstream body being read into the store. */
  readonly body: Body;
}

/** The preconditions of `h` against `entry`, in RFC 9110 §13.2.2's order (the method is GET or HEAD). */
export function evaluate(h: RequestHeaders, entry: CacheEntry): Precondition {
  // §13.2.1: ignored when the answer without them would not be a 2xx.
  if (entry.status < 200 || entry.status > 299) return 'serve';
  const etag = headerValue(entry.headers, 'etag');
  const ifMatch = h['if-match'];
  if (ifMatch !== undefined) {
    if (!matches(ifMatch, etag, true)) return 'failed';
  } else if (h['if-unmodified-since'] !== undefined) {
    const since = httpDate(h['if-unmodified-since']);
    const modified = httpDate(headerValue(entry.headers, 'last-modified') ?? '');
    // Without a valid date on either side there is nothing to compare: ignored.
    if (modified > since) return 'failed';
  }
  const ifNoneMatch = h['if-none-match'];
  if (ifNoneMatch !== undefined) return matches(ifNoneMatch, etag, false) ? 'not-modified' : 'serve';
  const since = httpDate(h['if-modified-since'] ?? '');
  if (Number.isNaN(since)) return 'serve';
  return lastModified(entry) <= since ? 'not-modified' : 'serve';
}

/**
 * The stored response's modification time for `If-Modified-Since`: its
 * Last-Modified, else its Date, else when it was stored (RFC 9111 §4.3.2), in
 * whole seconds as HTTP-dates are.
 */
function lastModified(entry: CacheEntry): number {
  const modified = httpDate(headerValue(entry.headers, 'last-modified') ?? '');
  if (!Number.isNaN(modified)) return modified;
  const date = httpDate(headerValue(entry.headers, 'date') ?? '');
  return Number.isNaN(date) ? Math.floor(entry.storedAt / 1000) * 1000 : date;
}

/**
 * Whether the `If-Match`/`If-None-Match` value `field` matches the stored
 * `etag`: `*` matches any stored response; otherwise one entity-tag of the
 * list, by strong comparison (neither weak) or weak (RFC 9110 §8.8.3.2).
 */
export function matches(field: string, etag: string | undefined, strong: boolean): boolean {
  if (field.trim() === '*') return true;
  if (etag === undefined) return false;
  const stored = entityTags(etag)[0];
  if (stored === undefined || (strong && stored.weak)) return false;
  return entityTags(field).some((t) => t.opaque === stored.opaque && !(strong && t.weak));
}

interface EntityTag { weak: boolean; opaque: string }

/** The entity-tags of a list (`W/"a", "b"`); a malformed rest is dropped. */
function entityTags(list: string): EntityTag[] {
  const out: EntityTag[] = [];
  let i = 0;
  const n = list.length;
  while (i < n) {
    while (i < n && (list[i] === ',' || list[i] === ' ' || list[i] === '\t')) i++;
    if (i >= n) break;
    const weak = list.startsWith('W/', i);
    if (weak) i += 2;
    if (list[i] !== '"') break;
    // opaque-tag: the quotes and what is between them, commas included
    const end = list.indexOf('"', i + 1);
    if (end < 0) break;
    out.push({ weak, opaque: list.slice(i, end + 1) });
    i = end + 1;
  }
  return out;
}

/** The 304 for `entry` at `now`: the fields the 200 would carry that §15.4.5 lists, `x-cache` and `age`, no body. */
export function notModified(entry: CacheEntry, now: number, status: CacheStatus = 'HIT'): GatewayResponse {
  const headers: string[] = [];
  const stored = entry.headers;
  const n = expiresLast(stored) ? stored.length - 2 : stored.length;
  for (let i = 0; i < n; i += 2) {
    if (NOT_MODIFIED_FIELDS.has(stored[i]!)) headers.push(stored[i]!, stored[i + 1]!);
  }
  if (n < stored.length) headers.push('expires', restatedExpires(entry, now));
  headers.push('x-cache', status, 'age', String(ageSeconds(entry, now)));
  return { status: 304, headers, body: null };
}

/**
 * Answers `req` from the fresh `entry` when its preconditions decide the
 * answer (a 304, or a 412 PRECONDITION_FAILED); false when the stored
 * response is the answer after all.
 */
export function answerConditional(subscriber: Subscriber<GatewayResponse>, req: GatewayRequest, entry: CacheEntry, now: number): boolean {
  const outcome = evaluate(req.headers, entry);
  if (outcome === 'serve') return false;
  req.locals.cache = 'HIT';
  answerPrecondition(subscriber, outcome, entry, now, 'HIT');
  return true;
}

/** Sends the 304 (`not-modified`) or the 412 (`failed`) for `entry`, tagged `status`. */
export function answerPrecondition(
  subscriber: Subscriber<GatewayResponse>,
  outcome: Exclude<Precondition, 'serve'>,
  entry: CacheEntry,
  now: number,
  status: CacheStatus,
): void {
  if (outcome === 'failed') {
    subscriber.error(new PreconditionFailedError('a precondition of the request failed against the stored response', { headers: { 'x-cache': status } }));
    return;
  }
  subscriber.next(notModified(entry, now, status));
  subscriber.complete();
}

/**
 * Answers the preconditions `h` from an upstream answer the cache does not
 * store, as the upstream would have had they reached it: a 304 or a 412
 * (its body destroyed), or false when `res` is the answer. Its headers
 * stand for a stored response's, received `now`.
 */
export function answerUnstored(subscriber: Subscriber<GatewayResponse>, h: RequestHeaders, res: GatewayResponse, now: number, status: CacheStatus): boolean {
  const head: CacheEntry = {
    kind: 'entry', status: res.status, statusText: res.statusText, headers: res.headers, body: null, vary: [],
    storedAt: now, initialAge: 0, freshUntil: now, staleWhileRevalidate: 0, staleIfError: 0,
  };
  const outcome = evaluate(h, head);
  if (outcome === 'serve') return false;
  res.body?.destroy();
  answerPrecondition(subscriber, outcome, head, now, status);
  return true;
}
