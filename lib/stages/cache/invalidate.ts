import type { RequestHeaders } from '../../types.ts';
import { isPromiseLike, type CacheEntry, type CacheRecord, type CacheStore, type VaryRecord } from './entry.ts';
import { variantKey } from './key.ts';

/**
 * Invalidation after an unsafe method (RFC 9111 §4.4: a cache MUST
 * invalidate the target URI when a POST, PUT, PATCH or DELETE gets a
 * non-error answer). An entry at the URL's base key is deleted. Variants
 * cannot be listed (their keys hold the request headers' values), so the
 * URL's vary record is marked instead: `since` says variants stored before
 * it are not served, and every later rewrite of the record keeps the mark,
 * and the latest `until`, so the record outlives the variants it hides.
 */

/** How long a mark lasts over a vary record written before records kept `until` (24 h). */
const UNKNOWN_UNTIL = 24 * 60 * 60 * 1000;

type OnError = (err: unknown) => void;

/**
 * Whether a variant found through `rec` may be served: stored after the URL
 * was last invalidated. One stored in the same millisecond may have come
 * before it: not served (a miss, never a response the invalidation meant to remove).
 */
export function current(rec: VaryRecord, entry: CacheEntry | undefined): CacheEntry | undefined {
  return entry === undefined || rec.since === undefined || entry.storedAt > rec.since ? entry : undefined;
}

/**
 * Writes the vary record naming `names` over whatever `base` holds: the
 * record read first keeps its mark and the later `until`. The store's
 * answer may come later (Redis); the variant itself is written meanwhile.
 */
export function writeVary(store: CacheStore, base: string, names: readonly string[], ttl: number, now: number, onError: OnError): void {
  const write = (old: CacheRecord | undefined): void => {
    const prior = old?.kind === 'vary' ? old : undefined;
    const until = Math.max(prior?.until ?? 0, now + ttl);
    set(store, base, { kind: 'vary', names, since: prior?.since, until }, until - now, onError);
  };
  read(store, base, write, onError);
}

/** Invalidates what `base` (a GET's key) holds: the entry, or every variant its vary record leads to. */
export function invalidate(store: CacheStore, base: string, headers: RequestHeaders, now: number, onError: OnError): void {
  read(store, base, (old) => {
    if (old === undefined) return;
    if (old.kind === 'entry') {
      remove(store, base, onError);
      return;
    }
    const until = old.until ?? now + UNKNOWN_UNTIL;
    // The requester's own variant goes at once; the mark hides the others.
    remove(store, variantKey(base, headers, old.names), onError);
    if (until > now) set(store, base, { kind: 'vary', names: old.names, since: now, until }, until - now, onError);
  }, onError);
}

function read(store: CacheStore, key: string, then: (r: CacheRecord | undefined) => void, onError: OnError): void {
  let got: CacheRecord | undefined | PromiseLike<CacheRecord | undefined>;
  try {
    got = store.get(key);
  } catch (err) {
    onError(err);
    then(undefined);
    return;
  }
  if (!isPromiseLike(got)) then(got);
  else got.then(then, (err: unknown) => {
    onError(err);
    then(undefined);
  });
}

function set(store: CacheStore, key: string, record: CacheRecord, ttl: number, onError: OnError): void {
  try {
    const r = store.set(key, record, ttl);
    if (isPromiseLike(r)) r.then(undefined, onError);
  } catch (err) {
    onError(err);
  }
}

/** Deletes `key`; with `storedAt`, only while it holds the entry stored then (`CacheStore.deleteIf`, when the store has it). */
export function remove(store: CacheStore, key: string, onError: OnError, storedAt?: number): void {
  try {
    const r = storedAt !== undefined && store.deleteIf !== undefined ? store.deleteIf(key, storedAt) : store.delete?.(key);
    if (r !== undefined && isPromiseLike(r)) r.then(undefined, onError);
  } catch (err) {
    onError(err);
  }
}
