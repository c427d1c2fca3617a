import type { GatewayRequest } from '../../types.ts';
import { isPromiseLike, type CacheEntry, type CacheRecord, type CacheStore, type VaryRecord } from './entry.ts';
import { retention } from './freshness.ts';
import { current, invalidate, remove, writeVary } from './invalidate.ts';
import { variantKey } from './key.ts';
import { hasValidator } from './revalidation.ts';

export interface Found {
  entry: CacheEntry | undefined;
  /** Where the entry is (or would be): the base key, or a variant key when a vary record was found. */
  key: string;
}

/**
 * Entries and vary records over a store. A response without `Vary` sits at
 * its base key; one with `Vary` leaves a vary record there naming the
 * headers, and sits at the variant key. Lookups stay synchronous when the
 * store is, so a memory hit costs no microtask.
 */
export class CacheTable {
  constructor(
    private readonly store: CacheStore,
    private readonly onError: (err: unknown) => void,
    /** How long (ms) past its stale windows an entry with a validator is kept, to be revalidated. */
    private readonly keep = 0,
  ) {}

  /** The base record, then the variant its vary record points to. Throws or rejects if the store does. */
  lookup(req: GatewayRequest, base: string): Found | PromiseLike<Found> {
    const rec = this.store.get(base);
    return isPromiseLike(rec) ? rec.then((r) => this.variant(req, base, r)) : this.variant(req, base, rec);
  }

  private variant(req: GatewayRequest, base: string, rec: CacheRecord | undefined): Found | PromiseLike<Found> {
    if (rec === undefined || rec.kind === 'entry') return { entry: rec, key: base };
    const key = variantKey(base, req.headers, rec.names);
    const got = this.store.get(key);
    // A variant stored before an unsafe method invalidated the URL is a miss.
    if (rec.since !== undefined) return isPromiseLike(got) ? got.then((e) => marked(rec, e, key)) : marked(rec, got, key);
    return isPromiseLike(got) ? got.then((e) => found(e, key)) : found(got, key);
  }

  /** After an unsafe method's non-error answer: what `base` (the URL's GET key) holds is no longer served. */
  invalidate(base: string, req: GatewayRequest, now: number): void {
    invalidate(this.store, base, req.headers, now, this.onError);
  }

  /** Stores `entry` for `req` until its stale windows close (and `keep` more with a validator), without waiting; returns its key. */
  write(base: string, req: GatewayRequest, entry: CacheEntry, now: number): string {
    const key = variantKey(base, req.headers, entry.vary);
    const ttl = this.ttl(entry, now);
    if (ttl <= 0) return key;
    if (entry.vary.length > 0) writeVary(this.store, base, entry.vary, ttl, now, this.onError);
    this.set(key, entry, ttl);
    return key;
  }

  /**
   * Stores `entry`, `old` freshened by a 304, where `old` was: only while
   * the store still holds `old` there (`CacheStore.replace`), so a response
   * stored meanwhile (by a refresh, another gateway) or an invalidation is
   * not overwritten with the older body. Returns the key.
   */
  refresh(base: string, req: GatewayRequest, old: CacheEntry, entry: CacheEntry, now: number): string {
    const store = this.store;
    if (store.replace === undefined || !sameNames(old.vary, entry.vary)) return this.write(base, req, entry, now);
    const key = variantKey(base, req.headers, entry.vary);
    const ttl = this.ttl(entry, now);
    if (ttl <= 0) return key;
    // the vary record leads to the variant: it must live as long (it keeps a later `until` and its mark)
    if (entry.vary.length > 0) writeVary(store, base, entry.vary, ttl, now, this.onError);
    try {
      const r = store.replace(key, entry, ttl, old.storedAt);
      if (isPromiseLike(r)) r.then(undefined, this.onError);
    } catch (err) {
      this.onError(err);
    }
    return key;
  }

  /**
   * Deletes `old` (a 304, or an answer that may not be stored, superseded it)
   * at `req`'s variant of `base`, only while the key still holds it: a
   * response stored meanwhile (a refresh, another gateway) is newer than the
   * answer, and a vary record there now keeps the URL's invalidation mark.
   */
  remove(base: string, req: GatewayRequest, old: CacheEntry): void {
    remove(this.store, variantKey(base, req.headers, old.vary), this.onError, old.storedAt);
  }

  private ttl(entry: CacheEntry, now: number): number {
    const ttl = retention(entry, now);
    return ttl > 0 && this.keep > 0 && hasValidator(entry.headers) ? ttl + this.keep : ttl;
  }

  private set(key: string, record: CacheRecord, ttl: number): void {
    try {
      const r = this.store.set(key, record, ttl);
      if (isPromiseLike(r)) r.then(undefined, this.onError);
    } catch (err) {
      this.onError(err);
    }
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

function found(e: CacheRecord | undefined, key: string): Found {
  return { entry: e?.kind === 'entry' ? e : undefined, key };
}

function marked(rec: VaryRecord, e: CacheRecord | undefined, key: string): Found {
  return { entry: current(rec, e?.kind === 'entry' ? e : undefined), key };
}
