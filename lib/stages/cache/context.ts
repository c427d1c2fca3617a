import type { Clock, GatewayRequest, Handler } from '../../types.ts';
import type { CacheEntry } from './entry.ts';
import type { Inflight } from './inflight.ts';
import type { StoragePolicy } from './policy.ts';
import type { CacheTable } from './table.ts';

/** What a coalescing leader hands its waiters: the entry it stored, or the stale one it fell back to. */
/**
 * The method a coalesced waiter (coalesce.ts) is told by, when its own
 * request's head came (miss.ts's `hold`): a symbol, so no other subscriber's
 * field of a common name is called by mistake (review RD).
 */
export const HEADED: unique symbol = Symbol('rxgate.cache.headed');

/** A coalesced waiter: told when its own upstream's head came, since its answer waits for the body. */
export interface Headed {
  [HEADED](): void;
}

export interface Settled {
  entry: CacheEntry;
  key: string;
  status: 'HIT' | 'STALE';
}

/**
 * What the cache's paths (miss, coalescing, revalidation) share: built once
 * when `cache()` wraps a handler, never per request.
 */
export interface CacheContext {
  /** The handler the cache wraps: the way upstream. */
  readonly next: Handler;
  readonly policy: StoragePolicy;
  /** Largest body stored, in bytes. */
  readonly maxEntrySize: number;
  /** Wall-clock ms for all freshness math. */
  readonly clock: Clock;
  readonly table: CacheTable;
  /** The store copies body bytes on `set` (`CacheStore.copiesBodies`): the tee need not. */
  readonly storeCopies: boolean;
  /** Misses being fetched, by lookup key, for coalescing. */
  readonly inflight: Inflight<Settled>;
  /** Keys with a background revalidation under way. */
  readonly revalidating: Set<string>;
}

/** Stores `entry` for `req` (without waiting for the store); returns the key it went under. */
export function storeEntry(ctx: CacheContext, base: string, req: GatewayRequest, entry: CacheEntry): string {
  return ctx.table.write(base, req, entry, ctx.clock.now());
}
