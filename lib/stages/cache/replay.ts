import type { BufferedBody } from '../../body.ts';
import { HeadBytes } from '../../server/head-bytes.ts';
import type { GatewayRequest, GatewayResponse } from '../../types.ts';
import { withoutValidators } from './conditional.ts';
import { headerValue, withCacheStatus, type CacheEntry } from './entry.ts';
import { ageSeconds, expiresLast, restatedExpires } from './freshness.ts';
import type { StoragePlan } from './policy.ts';

/** The `x-cache` values. */
export type CacheStatus = 'HIT' | 'MISS' | 'STALE' | 'BYPASS' | 'REVALIDATED';

/**
 * A response replayed from `entry` at `now`: its headers plus `x-cache` and
 * `age` (and a stored `Expires` restated: freshness.ts), a fresh body. A HEAD gets no body and the `content-length` the GET
 * gets (RFC 9110 §9.3.2): the edge takes a HEAD's length from that header,
 * and an entry stored from a chunked answer has none.
 */
export function replay(entry: CacheEntry, method: string, status: CacheStatus, now: number): GatewayResponse {
  const stored = entry.headers;
  let headers: string[];
  if (expiresLast(stored)) {
    // Restated after x-cache, so the lines before it stay those of `hitHead`.
    headers = stored.slice(0, stored.length - 2);
    headers.push('x-cache', status, 'expires', restatedExpires(entry, now), 'age', String(ageSeconds(entry, now)));
  } else {
    headers = stored.slice();
    headers.push('x-cache', status, 'age', String(ageSeconds(entry, now)));
  }
  if (method === 'HEAD') {
    if (headerValue(entry.headers, 'content-length') === undefined) headers.push('content-length', String(entry.body?.length ?? 0));
  }
  const body = method === 'HEAD' || entry.body === null ? null : entry.body.replay();
  // `head`: the entry's lines made once (hitHead); the writer checks the list still starts with them.
  return entry.statusText === undefined
    ? { status: entry.status, headers, body, head: entry.head }
    : { status: entry.status, statusText: entry.statusText, headers, body, head: entry.head };
}

/**
 * The lines a fresh hit of an entry with `headers` starts with: its headers
 * and `x-cache: HIT`, as `replay` lists them. The writer makes their bytes
 * once per decoded entry (head-bytes.ts); a STALE or REVALIDATED answer
 * does not start with them and is written line by line.
 */
export function hitHead(headers: readonly string[]): HeadBytes {
  return new HeadBytes([...(expiresLast(headers) ? headers.slice(0, headers.length - 2) : headers), 'x-cache', 'HIT']);
}

/** `res` with the gateway's `x-cache` header in place of an upstream's. */
export function tagged(res: GatewayResponse, status: CacheStatus): GatewayResponse {
  return { ...res, headers: withCacheStatus(res.headers, status) };
}

export function entryOf(res: GatewayResponse, plan: StoragePlan, body: BufferedBody | null): CacheEntry {
  const f = plan.freshness;
  // Field by field rather than `...plan.freshness`: a spread after other
  // properties copies through a builtin, and gives the entry another shape.
  return {
    kind: 'entry', status: res.status, statusText: res.statusText, headers: plan.headers, body, vary: plan.vary,
    storedAt: f.storedAt, initialAge: f.initialAge, freshUntil: f.freshUntil,
    staleWhileRevalidate: f.staleWhileRevalidate, staleIfError: f.staleIfError,
  };
}

/**
 * The GET a background revalidation sends for `req`: the request as it came
 * (its client address and trusted-proxy mark included: what the upstream
 * builds from the forwarding headers is stored for everyone) with a bare `?`
 * kept, as forward sends it, no body, and headers minus the client's
 * validators (a 304 to them is about the client's copy, not the stored one:
 * revalidate.ts sends the stored entry's instead) and minus `Range` and
 * `If-Range` (a stale Range hit refreshes the whole entry), its own header object
 * and locals (minus the response headers meant for the client), so it
 * cannot disturb the request it came from.
 */
export function backgroundRequest(req: GatewayRequest): GatewayRequest {
  const { responseHeaders: _, ...locals } = req.locals;
  const headers = withoutValidators(req.headers);
  // The whole 200 is what is stored: a part (206) would leave the entry stale.
  delete headers.range;
  delete headers['if-range'];
  return { ...req, method: 'GET', emptyQuery: req.emptyQuery === true, headers, body: null, locals };
}
