/**
 * A fixed number of bytes addressed as one array, kept in large Buffers
 * ("slabs") allocated once, when first written to, and never freed: the
 * memory store's records live here rather than in one Buffer each, so a
 * stored entry is no object at all for the collector, and a full store's
 * churn allocates nothing. Slab boundaries are invisible to callers: a byte
 * range may span two slabs. Positions of 32-bit fields must be multiples of
 * 4 (the slab size is a multiple of 8, so such a field never spans slabs).
 */
/** Bytes `write` copies in a loop rather than through `copy`. */
const SMALL = 128;

export class Slabs {
  readonly capacity: number;
  readonly slabSize: number;
  private readonly slabs: Buffer[] = [];
  private readonly words: Int32Array[] = [];

  /**
   * @param capacity bytes addressable, rounded down to a multiple of 8
   * @param slabSize bytes per slab (a multiple of 8; smaller stores get one slab of their capacity)
   */
  constructor(capacity: number, slabSize = 1024 * 1024 /* 1 MiB */) {
    this.capacity = Math.floor(capacity / 8) * 8;
    this.slabSize = Math.max(8, Math.min(slabSize, this.capacity));
  }

  /** Slabs allocated so far. */
  get allocated(): number {
    return this.slabs.length;
  }

  private slab(i: number): Buffer {
    while (this.slabs.length <= i) {
      const n = this.slabs.length;
      const size = Math.min(this.slabSize, this.capacity - n * this.slabSize);
      // Outside the Buffer pool: each slab is its own backing store, allocated once.
      const buf = Buffer.allocUnsafeSlow(size);
      this.slabs.push(buf);
      this.words.push(new Int32Array(buf.buffer, buf.byteOffset, size >> 2));
    }
    return this.slabs[i]!;
  }

  /** The slab holding `pos` (allocated if new); `pos - slabStart(pos)` is where in it. */
  slabAt(pos: number): Buffer {
    return this.slab(Math.floor(pos / this.slabSize));
  }

  /** Where the slab holding `pos` starts. */
  slabStart(pos: number): number {
    return Math.floor(pos / this.slabSize) * this.slabSize;
  }

  /**
   * Bytes to skip at `pos` so that `len` bytes from there do not run past
   * the end and, when they fit in one slab and at most a sixteenth of a slab
   * is left unused, not across a slab's end (so that they can be written in
   * place, as one slab's range). A larger gap is not skipped: the record
   * spans the two slabs, or a store of 0.5 MiB entries would hold half as
   * many (review RA). Nor is one that would put the record past the end of a
   * store whose last slab is short.
   */
  skipFor(pos: number, len: number): number {
    const at = pos % this.capacity;
    if (at + len > this.capacity) return this.capacity - at;
    const end = this.slabStart(at) + this.slabSize;
    if (len > this.slabSize || at + len <= end || end - at > this.slabSize >> 4 || end + len > this.capacity) return 0;
    return end - at;
  }

  /** Whether `len` bytes at `pos` lie within one slab. */
  inOneSlab(pos: number, len: number): boolean {
    const at = pos % this.capacity;
    return at + len <= this.slabStart(at) + this.slabSize;
  }

  readInt32(pos: number): number {
    const i = Math.floor(pos / this.slabSize);
    this.slab(i);
    return this.words[i]![(pos - i * this.slabSize) >> 2]!;
  }

  writeInt32(pos: number, value: number): void {
    const i = Math.floor(pos / this.slabSize);
    this.slab(i);
    this.words[i]![(pos - i * this.slabSize) >> 2] = value;
  }

  /**
   * Copies `src[start, end)` to `pos`. A few bytes (a key) byte by byte: on
   * Node 20 `copy` of part of a Buffer makes a Uint8Array view per call.
   */
  write(pos: number, src: Buffer, start: number, end: number): void {
    while (start < end) {
      const i = Math.floor(pos / this.slabSize);
      const at = pos - i * this.slabSize;
      const slab = this.slab(i);
      const n = Math.min(end - start, slab.length - at);
      if (n <= 0) throw new RangeError(`Slabs.write past the end: ${pos} of ${this.capacity}`);
      if (n <= SMALL) for (let k = 0; k < n; k++) slab[at + k] = src[start + k]!;
      else src.copy(slab, at, start, start + n);
      start += n;
      pos += n;
    }
  }

  /** Copies `n` bytes at `pos` into `dst` at `offset`. */
  read(pos: number, n: number, dst: Buffer, offset: number): void {
    while (n > 0) {
      const i = Math.floor(pos / this.slabSize);
      const at = pos - i * this.slabSize;
      const slab = this.slab(i);
      const m = Math.min(n, slab.length - at);
      if (m <= 0) throw new RangeError(`Slabs.read past the end: ${pos} of ${this.capacity}`);
      slab.copy(dst, offset, at, at + m);
      n -= m;
      pos += m;
      offset += m;
    }
  }

  /** Whether the `n` bytes at `pos` equal `bytes[0, n)`. */
  equals(pos: number, bytes: Uint8Array, n: number): boolean {
    let j = 0;
    while (j < n) {
      const i = Math.floor(pos / this.slabSize);
      const at = pos - i * this.slabSize;
      const slab = this.slab(i);
      const m = Math.min(n - j, slab.length - at);
      if (m <= 0) return false;
      for (let k = 0; k < m; k++) if (slab[at + k] !== bytes[j + k]) return false;
      j += m;
      pos += m;
    }
    return true;
  }
}
