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

/** The options with their defaults, checked: a bad value throws a `TypeError` when the store is built. */
export function checked(options: MemoryCacheStoreOptions): { maxBytes: number; slabBytes: number; clock: Clock } {
  const { maxBytes = defaults.maxBytes, runtime = defaults.runtime, slabBytes = defaults.slabBytes } = options;
  if (!Number.isFinite(maxBytes) || maxBytes <= 0) throw new TypeError(`maxBytes: expected a positive number, got ${maxBytes}`);
  if (!Number.isInteger(slabBytes) || slabBytes <= 0 || slabBytes % 8 !== 0) throw new TypeError(`slabBytes: expected a positive multiple of 8, got ${slabBytes}`);
  return { maxBytes, slabBytes, clock: options.clock ?? { now: () => runtime.wallNow() } };
}
