interface Slot<V> {
  value: V;
  size: number;
  expiresAt: number;
}

/**
 * A least-recently-used map bounded by total bytes, with per-entry expiry.
 * The `Map`'s insertion order is the recency order: a hit moves its key to
 * the end, eviction takes from the front. Expired entries go when touched or
 * when eviction reaches them; the byte bound holds either way.
 */
export class LruBytes<V> {
  private readonly map = new Map<string, Slot<V>>();
  private total = 0;
  /** Entries removed to make room (not counting expiry or replacement). */
  evictions = 0;

  constructor(readonly maxBytes: number) {
    if (!Number.isFinite(maxBytes) || maxBytes <= 0) throw new TypeError(`maxBytes: expected a positive number, got ${maxBytes}`);
  }

  get bytes(): number {
    return this.total;
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string, now: number): V | undefined {
    const slot = this.map.get(key);
    if (slot === undefined) return undefined;
    this.map.delete(key);
    if (slot.expiresAt <= now) {
      this.total -= slot.size;
      return undefined;
    }
    this.map.set(key, slot);
    return slot.value;
  }

  /** Stores `value` until `expiresAt`; false (and nothing stored) when it alone exceeds the bound. */
  set(key: string, value: V, size: number, expiresAt: number): boolean {
    this.delete(key);
    if (size > this.maxBytes) return false;
    this.map.set(key, { value, size, expiresAt });
    this.total += size;
    while (this.total > this.maxBytes) {
      const oldest = this.map.keys().next().value as string;
      this.delete(oldest);
      this.evictions++;
    }
    return true;
  }

  delete(key: string): boolean {
    const slot = this.map.get(key);
    if (slot === undefined) return false;
    this.map.delete(key);
    this.total -= slot.size;
    return true;
  }

  /** Keys from least to most recently used (for tests and debugging). */
  keys(): string[] {
    return [...this.map.keys()];
  }
}
