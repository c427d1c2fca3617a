import type { CacheRecord, CacheStore } from './entry.ts';
import { LruBytes } from './lru.ts';
import { pack, unpack } from './packed.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import type { Clock } from '../../types.ts';

export interface MemoryCacheStoreOptions {
  /**
   * Bound on the bytes held (bodies, headers, keys); least recently used
   * entries go first. An entry larger than this is not stored.
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
}

const defaults = {
  maxBytes: 64 * 1024 * 1024, // 64 MiB
  runtime: systemRuntime,
} satisfies Required<Omit<MemoryCacheStoreOptions, 'clock'>>;

/**
 * Bookkeeping counted per record on top of its packed bytes and its key: the
 * LRU node, the Buffer object, the Map slot, the key string's header.
 * Measured (bench/memory/cache-gc.ts): ~330 bytes of V8 heap per entry with
 * a 60-character key, so ~240 besides the key's characters.
 */
const RECORD_OVERHEAD = 240;

/**
 * An in-process cache store: synchronous, an LRU bounded by bytes, entries
 * expire after their TTL. Each record is kept packed in one Buffer
 * (packed.ts): a few objects per entry on the V8 heap rather than a dozen,
 * half the heap a stored entry used to hold; a hit unpacks it (a few
 * short-lived strings).
 */
export class MemoryCacheStore implements CacheStore {
  /** `pack` copies the body into the record's Buffer. */
  readonly copiesBodies = true;
  private readonly lru: LruBytes<Buffer>;
  private readonly clock: Clock;

  constructor(options: MemoryCacheStoreOptions = {}) {
    const { maxBytes = defaults.maxBytes, runtime = defaults.runtime } = options;
    this.lru = new LruBytes(maxBytes);
    this.clock = options.clock ?? { now: () => runtime.wallNow() };
  }

  get(key: string): CacheRecord | undefined {
    const packed = this.lru.get(key, this.clock.now());
    return packed === undefined ? undefined : unpack(packed);
  }

  set(key: string, record: CacheRecord, ttl: number): void {
    const packed = pack(record);
    this.lru.set(key, packed, RECORD_OVERHEAD + key.length * 2 + packed.length, this.clock.now() + ttl);
  }

  delete(key: string): void {
    this.lru.delete(key);
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.lru.bytes;
  }

  /** Records held now (entries and vary records). */
  get size(): number {
    return this.lru.size;
  }

  /** Records evicted to stay under `maxBytes`. */
  get evictions(): number {
    return this.lru.evictions;
  }
}
