import type { Subscriber } from 'rxjs';
import type { GatewayRequest, GatewayResponse, RequestHeaders } from '../../types.ts';
import { answerPrecondition, evaluate, matches, withoutValidators } from './conditional.ts';
import type { CacheContext } from './context.ts';
import { headerValue, storableHeaders, type CacheEntry } from './entry.ts';
import { httpDate } from './freshness.ts';
import { planStorage, type StoragePolicy } from './policy.ts';
import { entryOf, replay } from './replay.ts';

/**
 * Revalidation of a stored response with the upstream (RFC 9111 §4.3), as
 * nginx's `proxy_cache_revalidate on` does it: the request carries the
 * stored `ETag` as `If-None-Match` and the stored `Last-Modified` as
 * `If-Modified-Since` (never the client's: those are answered from what the
 * cache ends up holding); a `304` freshens the stored response, which
 * answers with its body; a `200` replaces it as any miss does.
 */

/**
 * `headers` with the client's validators replaced by `entry`'s, or null
 * when the entry has none (it is then fetched whole, as before).
 */
export function revalidationHeaders(headers: RequestHeaders, entry: CacheEntry): RequestHeaders | null {
  const etag = headerValue(entry.headers, 'etag');
  const modified = headerValue(entry.headers, 'last-modified');
  if (etag === undefined && modified === undefined) return null;
  const out = withoutValidators(headers);
  if (etag !== undefined) out['if-none-match'] = etag;
  if (modified !== undefined) out['if-modified-since'] = modified;
  return out;
}

/** Whether a stored response's headers carry a validator: only such an entry can be revalidated, so only it is kept past its stale windows (`keep`). */
export function hasValidator(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name === 'etag' || name === 'last-modified') return true;
  }
  return false;
}

/**
 * Whether the `304` `res` is about `entry` (RFC 9111 §4.3.4): its `ETag`,
 * when it has one, matches the stored one (weak comparison: nginx weakens a
 * gzipped `200`'s `ETag` and never its `304`'s, where §4.3.4 asks a strong
 * one to be the same strong one); else its `Last-Modified` is the stored
 * one's date. A `304` with neither selects nothing: §4.3.4 selects a stored
 * response without a validator only, and a revalidated entry has one.
 */
export function selects(entry: CacheEntry, res: GatewayResponse): boolean {
  const etag = headerValue(res.headers, 'etag');
  if (etag !== undefined) return etag.trim() !== '*' && matches(etag, headerValue(entry.headers, 'etag'), false);
  const modified = headerValue(res.headers, 'last-modified');
  const stored = headerValue(entry.headers, 'last-modified');
  return modified !== undefined && stored !== undefined && httpDate(modified) === httpDate(stored);
}

/**
 * Fields a `304` does not replace (RFC 9111 §3.2): `Content-Length` and the
 * `Content-Encoding` the stored body's bytes are in (the `304` has no body
 * to frame or decode), and its `Content-Type`: frameworks set a default one
 * on every response, a `304` too, and nginx keeps the stored fields.
 */
const KEPT = new Set(['content-length', 'content-encoding', 'content-type']);

/**
 * The stored `headers` updated with a `304`'s (RFC 9111 §3.2): each field
 * the `304` carries replaces every stored line of that name, the others
 * stay in their order; `KEPT` fields are not taken from the `304`, nor its
 * `ETag` over a stored one (they match, weakly: a strong tag never labels a
 * body stored under a weak one). Hop-by-hop fields and `Age` are dropped
 * later, as on any store (`storableHeaders`).
 */
export function updatedHeaders(stored: readonly string[], fresh: readonly string[]): string[] {
  const etag = headerValue(stored, 'etag') !== undefined;
  const taken = (name: string): boolean => !KEPT.has(name) && !(etag && name === 'etag');
  const replaced = new Set<string>();
  for (let i = 0; i < fresh.length; i += 2) if (taken(fresh[i]!)) replaced.add(fresh[i]!);
  const out: string[] = [];
  for (let i = 0; i < stored.length; i += 2) if (!replaced.has(stored[i]!)) out.push(stored[i]!, stored[i + 1]!);
  for (let i = 0; i < fresh.length; i += 2) if (taken(fresh[i]!)) out.push(fresh[i]!, fresh[i + 1]!);
  return out;
}

/** What a `304` made of a stored entry. */
export interface Freshened {
  /** The entry with the `304`'s headers and freshness from `now`, the stored body. */
  readonly entry: CacheEntry;
  /** May be stored (the updated headers still allow it); if not, it answers this request only. */
  readonly storable: boolean;
}

/**
 * `entry` freshened by the `304` `res` arriving at `now`: headers merged
 * (`updatedHeaders`), freshness worked out from them as for a new response
 * (`Date`, `Age` and `Cache-Control` being the `304`'s where it sent them),
 * the stored body. Updated headers that forbid storing (`no-store`, a
 * `Set-Cookie`, no time left…) answer the request and store nothing.
 */
export function freshen(entry: CacheEntry, res: GatewayResponse, now: number, policy: StoragePolicy): Freshened {
  const head: GatewayResponse = { status: entry.status, headers: updatedHeaders(entry.headers, res.headers), body: null };
  if (entry.statusText !== undefined) head.statusText = entry.statusText;
  const plan = planStorage(head, now, policy);
  if (plan !== null) return { entry: entryOf(head, plan, entry.body), storable: true };
  return {
    entry: {
      kind: 'entry', status: entry.status, statusText: entry.statusText, headers: storableHeaders(head.headers), body: entry.body, vary: entry.vary,
      storedAt: now, initialAge: 0, freshUntil: now, staleWhileRevalidate: 0, staleIfError: 0,
    },
    storable: false,
  };
}

/**
 * What the `304` `res` about `old` does to the store: the freshened entry
 * replaces it (`CacheTable.refresh`; `key` is where), or, when the merged
 * fields forbid storing (`no-store`, `private`…), `old` is deleted (`key`
 * null): kept, it was served `STALE` on a later 5xx, or refreshed on every
 * hit inside `stale-while-revalidate`, against what the upstream now says.
 */
export function applyNotModified(ctx: CacheContext, base: string, req: GatewayRequest, old: CacheEntry, res: GatewayResponse, now: number): { entry: CacheEntry; key: string | null } {
  const { entry, storable } = freshen(old, res, now, ctx.policy);
  if (storable) return { entry, key: ctx.table.refresh(base, req, old, entry, now) };
  ctx.table.remove(base, req, old);
  return { entry, key: null };
}

/**
 * Answers `req` from the freshened `entry` (`x-cache: REVALIDATED`): its
 * body, or the 304 or 412 the client's own preconditions decide against it
 * (`conditional`: it had some, and they were not sent upstream).
 */
export function answerFreshened(subscriber: Subscriber<GatewayResponse>, req: GatewayRequest, entry: CacheEntry, now: number, conditional: boolean): void {
  req.locals.cache = 'REVALIDATED';
  const outcome = conditional ? evaluate(req.headers, entry) : 'serve';
  if (outcome !== 'serve') {
    answerPrecondition(subscriber, outcome, entry, now, 'REVALIDATED');
    return;
  }
  subscriber.next(replay(entry, req.method, 'REVALIDATED', now));
  subscriber.complete();
}
