import { systemRuntime, type Runtime } from '../../runtime.ts';
import type { Clock } from '../../types.ts';

/** How a `MemoryCacheStore` (memory-store.ts) is bounded and where its time comes from. */
export interface MemoryCacheStoreOptions {
  /**
   * Bound on the bytes held (bodies, headers, keys, the index); the oldest
   * entries not read since they were stored go first. An entry larger than
   * this is not stored. The store allocates up to this many bytes, in 1 MiB
   * slabs as it fills, and keeps them.
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number;
  /**
   * Time source (wall-clock ms) for expiry; give it the same clock as the
   * `cache` operator. Overrides `runtime.wallNow`.
   * @default runtime.wallNow
   */
  clock?: Clock;
  /**
   * Where time comes from, unless `clock` is given (`virtualRuntime(testScheduler)` in tests).
   * @default systemRuntime
   */
  runtime?: Runtime;
  /**
   * Bytes per slab of the log (a multiple of 8); the store allocates
   * `maxBytes` in slabs of this size as it fills.
   * @default 1048576 (1 MiB)
   */
  slabBytes?: number;
}

export const defaults = {
  maxBytes: 64 * 1024 * 1024, // 64 MiB
  runtime: systemRuntime,
  slabBytes: 1024 * 1024, // 1 MiB
} satisfies Required<Omit<MemoryCacheStoreOptions, 'clock'>>;

