interface Node<V> {
  key: string;
  value: V;
  size: number;
  expiresAt: number;
  /** Towards the most recently used end. */
  newer: Node<V> | null;
  /** Towards the least recently used end. */
  older: Node<V> | null;
}

/**
 * The memory cache store before the log in slabs (docs/cache-memory.md),
 * kept here for the comparison benches (cache-gc.ts, store-cost.ts); no
 * part of lib uses it.
 *
 * A least-recently-used map bounded by total bytes, with per-entry expiry.
 * Recency is a doubly linked list (a hit moves its node to the newest end,
 * eviction takes from the oldest) indexed by a `Map`, so every operation is
 * O(1). (Using the Map's own insertion order and `keys().next()` to find the
 * oldest key looked simpler but is not O(1): V8 leaves deleted slots in the
 * table until it rehashes, and the iterator walks over all of them — under
 * steady eviction that was a third of the cache's miss-path time.)
 * Expired entries go when touched or when eviction reaches them; the byte
 * bound holds either way.
 */
export class LruBytes<V> {
  private readonly map = new Map<string, Node<V>>();
  private newest: Node<V> | null = null;
  private oldest: Node<V> | null = null;
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

  /** The value for `key` if present and unexpired at `now`; a hit becomes the most recently used. */
  get(key: string, now: number): V | undefined {
    const node = this.map.get(key);
    if (node === undefined) return undefined;
    if (node.expiresAt <= now) {
      this.remove(node);
      return undefined;
    }
    this.unlink(node);
    this.pushNewest(node);
    return node.value;
  }

  /**
   * Stores `value` as the most recently used, evicting the least recently
   * used entries until the total fits. A value larger than the whole bound is
   * not stored (returns false).
   */
  set(key: string, value: V, size: number, expiresAt: number): boolean {
    this.delete(key);
    if (size > this.maxBytes) return false;
    const node: Node<V> = { key, value, size, expiresAt, newer: null, older: null };
    this.map.set(key, node);
    this.pushNewest(node);
    this.total += size;
    while (this.total > this.maxBytes && this.oldest !== null) {
      this.remove(this.oldest);
      this.evictions++;
    }
    return true;
  }

  delete(key: string): boolean {
    const node = this.map.get(key);
    if (node === undefined) return false;
    this.remove(node);
    return true;
  }

  /** Keys from least to most recently used (for tests and diagnostics). */
  keys(): string[] {
    const out: string[] = [];
    for (let n = this.oldest; n !== null; n = n.newer) out.push(n.key);
    return out;
  }

  private remove(node: Node<V>): void {
    this.map.delete(node.key);
    this.unlink(node);
    this.total -= node.size;
  }

  private unlink(node: Node<V>): void {
    if (node.newer !== null) node.newer.older = node.older;
    else this.newest = node.older;
    if (node.older !== null) node.older.newer = node.newer;
    else this.oldest = node.newer;
    node.newer = null;
    node.older = null;
  }

  private pushNewest(node: Node<V>): void {
    node.older = this.newest;
    node.newer = null;
    if (this.newest !== null) this.newest.newer = node;
    this.newest = node;
    if (this.oldest === null) this.oldest = node;
  }
}
