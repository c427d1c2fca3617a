/**
 * The memory store's index: one slot per live record, its fields in typed
 * arrays (where the record sits in the log, its length, its key's hash and
 * length, its expiry, whether it was read since it was written), and an
 * open-addressing hash table (linear probing, backward-shift deletion, no
 * tombstones) from the key's hash to slots. The key's bytes are stored with
 * the record; `find` compares them through the `same` callback. The arrays
 * double when full and never shrink: no object per record.
 */
export class Slots {
  /** Position in the log (absolute, never wraps); -1 for a free slot. */
  pos = new Float64Array(0);
  /** Bytes the record takes in the log, header and padding included. */
  len = new Int32Array(0);
  /** Bytes counted against `maxBytes`. */
  size = new Int32Array(0);
  hash = new Int32Array(0);
  keyLength = new Int32Array(0);
  expiresAt = new Float64Array(0);
  /** 1 when read since written or moved (the second chance). */
  referenced = new Uint8Array(0);
  /** Hash table: slot + 1, 0 for empty. */
  private buckets = new Int32Array(0);
  private mask = -1;
  private readonly free: number[] = [];
  private used = 0;
  count = 0;

  constructor(initial = 64) {
    this.grow(initial);
  }

  /** A free slot for a record, not yet in the hash table. */
  allocate(): number {
    if (this.free.length === 0 && this.used === this.pos.length) this.grow(this.pos.length * 2);
    const slot = this.free.length > 0 ? this.free.pop()! : this.used++;
    this.referenced[slot] = 0;
    this.count++;
    return slot;
  }

  /** Puts an allocated slot (with its hash set) in the hash table. */
  insert(slot: number): void {
    const buckets = this.buckets;
    let i = this.hash[slot]! & this.mask;
    while (buckets[i] !== 0) i = (i + 1) & this.mask;
    buckets[i] = slot + 1;
  }

  /** The slot whose key hashes to `hash`, is `keyLength` bytes long and passes `same`; -1 when none. */
  find(hash: number, keyLength: number, same: (slot: number) => boolean): number {
    const buckets = this.buckets;
    for (let i = hash & this.mask; ; i = (i + 1) & this.mask) {
      const b = buckets[i]!;
      if (b === 0) return -1;
      const slot = b - 1;
      if (this.hash[slot] === hash && this.keyLength[slot] === keyLength && same(slot)) return slot;
    }
  }

  /** Takes `slot` out of the hash table and frees it. */
  remove(slot: number): void {
    const buckets = this.buckets;
    const mask = this.mask;
    let i = this.hash[slot]! & mask;
    while (buckets[i] !== slot + 1) i = (i + 1) & mask;
    // Backward shift: later entries of the probe run move into the hole.
    for (let j = (i + 1) & mask; buckets[j] !== 0; j = (j + 1) & mask) {
      if (fillsHole(i, j, this.hash[buckets[j]! - 1]! & mask, mask)) {
        buckets[i] = buckets[j]!;
        i = j;
      }
    }
    buckets[i] = 0;
    this.pos[slot] = -1;
    this.free.push(slot);
    this.count--;
  }

  private grow(n: number): void {
    const copy = <T extends Float64Array | Int32Array | Uint8Array>(old: T, make: (n: number) => T): T => {
      const next = make(n);
      next.set(old);
      return next;
    };
    this.pos = copy(this.pos, (k) => new Float64Array(k).fill(-1));
    this.len = copy(this.len, (k) => new Int32Array(k));
    this.size = copy(this.size, (k) => new Int32Array(k));
    this.hash = copy(this.hash, (k) => new Int32Array(k));
    this.keyLength = copy(this.keyLength, (k) => new Int32Array(k));
    this.expiresAt = copy(this.expiresAt, (k) => new Float64Array(k));
    this.referenced = copy(this.referenced, (k) => new Uint8Array(k));
    // At most half full, so probe runs stay short.
    this.buckets = new Int32Array(n * 2);
    this.mask = n * 2 - 1;
    for (let slot = 0; slot < this.used; slot++) if (this.pos[slot]! >= 0) this.insert(slot);
  }
}

/**
 * Linear probing's deletion by backward shift (no tombstones): whether the
 * entry at bucket `at`, whose home bucket is `home`, may move into the hole
 * at `hole`, that is whether the hole lies cyclically between its home and
 * where it sits.
 */
export function fillsHole(hole: number, at: number, home: number, mask: number): boolean {
  return ((at - home) & mask) >= ((at - hole) & mask);
}
