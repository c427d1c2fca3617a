import type { CacheRecord, CacheStore } from './entry.ts';
import { headBytesOf, packInto, storedAtIn, TextMemo, unpack } from './packed.ts';
import { hitHead } from './replay.ts';
import { Slabs } from './slabs.ts';
import { fnv1aBytes } from '../../hash.ts';
import { Slots } from './slots.ts';
import { checked, type MemoryCacheStoreOptions } from './memory-store-options.ts';
import type { Clock } from '../../types.ts';

export type { MemoryCacheStoreOptions };

/** A record in the log: its length in the log, its slot (-1: padding to the end of the log), its packed bytes' length; then the key's bytes, the packed record, padding to 8. */
const HEAD = 12;
/** Index bytes per record (the slot's typed-array fields, two hash buckets), counted against `maxBytes`. */
const SLOT_BYTES = 48;

/** V8 heap of a decoded entry kept for later hits (measured for entries as objects, bench/memory/cache-gc.ts) and of its `hot` entry (+ the key's length), counted against `maxBytes` with its copy of the bytes. */
const DECODED_BYTES = 640 + 48;

const align8 = (n: number): number => (n + 7) & ~7;

/**
 * An in-process cache store: synchronous, bounded by bytes, entries expire
 * after their TTL. Records are packed (packed.ts) and appended with their
 * key's bytes to a circular log in preallocated slabs (slabs.ts), found
 * through an index on typed arrays (slots.ts): no JavaScript object per
 * entry, so a full store under misses gives the collector nothing to mark.
 * Eviction is FIFO with a second chance (a record read since written is
 * moved to the head once). The first hit copies the record out of the log
 * (a response being written is never overwritten) and keeps the decoded
 * record for later hits, counted against `maxBytes`. docs/cache-memory.md.
 */
export class MemoryCacheStore implements CacheStore {
  /** `set` copies the packed record into the log. */
  readonly copiesBodies = true;
  readonly maxBytes: number;
  private readonly clock: Clock;
  private readonly slabs: Slabs;
  private readonly slots = new Slots();
  /** Absolute positions in the log: records live in [tail, head). */
  private head = 0;
  private tail = 0;
  private total = 0;
  /** A key's UTF-8 bytes (for hashing and comparing), their length and their hash. */
  private key = Buffer.allocUnsafeSlow(256);
  private keyLength = 0;
  private keyHash = 0;
  /** Where `set` packs a record: at its place in the log, after its header and key (offset > 0), or `scratch` (offset 0). */
  private readonly target = { offset: 0, reserve: (n: number): Buffer => this.reserve(n) };
  /** A record `set` packs aside (one larger than a slab, or than `maxBytes`). */
  private scratch = Buffer.allocUnsafeSlow(0);
  /** The record `set` is storing: its length in the log (-1: not stored), and when. */
  private recordLength = 0;
  private storingAt = 0;
  /** The last entry's header text, encoded (packed.ts). */
  private readonly memo = new TextMemo();
  /** A record being moved to the newest end. */
  private moving = Buffer.allocUnsafeSlow(0);
  /** By slot: the record as the first hit decoded it. */
  private readonly decoded: Array<CacheRecord | undefined> = [];
  /** Slots with a decoded record by key, and their keys: a hit's key is not encoded, hashed and compared byte by byte (docs/cache-hit.md). */
  private readonly hot = new Map<string, number>();
  private readonly hotKeys: Array<string | undefined> = [];
  evictions = 0; // records removed to make room (expired ones included)

  constructor(options: MemoryCacheStoreOptions = {}) {
    const { maxBytes, slabBytes, clock } = checked(options);
    this.maxBytes = maxBytes;
    this.slabs = new Slabs(maxBytes, slabBytes);
    this.clock = clock;
  }

  get(key: string): CacheRecord | undefined {
    const slot = this.hot.get(key) ?? this.find(key);
    if (slot < 0) return undefined;
    const slots = this.slots;
    const now = this.clock.now();
    if (slots.expiresAt[slot]! <= now) {
      this.drop(slot);
      return undefined;
    }
    slots.referenced[slot] = 1;
    const kept = this.decoded[slot];
    if (kept !== undefined) return kept;
    const at = slots.pos[slot]! % this.slabs.capacity;
    const n = this.slabs.readInt32(at + 8);
    const buf = Buffer.allocUnsafe(n);
    this.slabs.read(at + HEAD + this.keyLength, n, buf, 0);
    const record = unpack(buf, hitHead);
    // Kept only when it fits beside its own record; room is made at the
    // log's tail as for a store (this record, just read, gets its second chance).
    const extra = n + DECODED_BYTES + key.length + headBytesOf(buf);
    if (slots.size[slot]! + extra <= this.maxBytes) {
      this.makeRoom(0, extra, now);
      if (slots.pos[slot]! >= 0) {
        this.decoded[slot] = record;
        this.hot.set(key, slot);
        this.hotKeys[slot] = key;
        slots.size[slot] += extra;
        this.total += extra;
      }
    }
    return record;
  }

  set(key: string, record: CacheRecord, ttl: number): void {
    this.delete(key); // and leaves the key's bytes and hash for the record
    const now = (this.storingAt = this.clock.now());
    // Packed where it stays in the log (`reserve` makes room first), or aside when it spans slabs.
    const dataLength = packInto(record, this.target, this.memo);
    const len = this.recordLength;
    if (len < 0) return;
    const n = this.keyLength;
    const slabs = this.slabs;
    const at = this.head % slabs.capacity;
    if (this.target.offset === 0) slabs.write(at + HEAD + n, this.scratch, 0, dataLength);
    const slots = this.slots;
    const slot = slots.allocate();
    slabs.writeInt32(at, len);
    slabs.writeInt32(at + 4, slot);
    slabs.writeInt32(at + 8, dataLength);
    slabs.write(at + HEAD, this.key, 0, n);
    slots.pos[slot] = this.head;
    slots.len[slot] = len;
    slots.size[slot] = len + SLOT_BYTES;
    slots.hash[slot] = this.keyHash;
    slots.keyLength[slot] = n;
    slots.expiresAt[slot] = now + ttl;
    slots.insert(slot);
    this.head += len;
    this.total += len + SLOT_BYTES;
  }

  delete(key: string): void {
    const slot = this.find(key);
    if (slot >= 0) this.drop(slot);
  }

  /** `set`, only while `key` holds the entry stored at `storedAt` (a revalidated entry's write, revalidation.ts). */
  replace(key: string, record: CacheRecord, ttl: number, storedAt: number): boolean {
    if (this.holding(key, storedAt) < 0) return false;
    this.set(key, record, ttl);
    return true;
  }

  /** `delete`, only while `key` holds the entry stored at `storedAt` (a superseded entry's, table.ts's `remove`). */
  deleteIf(key: string, storedAt: number): void {
    const slot = this.holding(key, storedAt);
    if (slot >= 0) this.drop(slot);
  }

  /** The slot of `key` while it holds the live entry stored at `storedAt`, else -1. */
  private holding(key: string, storedAt: number): number {
    const slot = this.find(key);
    if (slot < 0 || this.slots.expiresAt[slot]! <= this.clock.now()) return -1;
    const kept = this.decoded[slot];
    const at = kept !== undefined ? (kept.kind === 'entry' ? kept.storedAt : NaN) : storedAtIn(this.slabs, (this.slots.pos[slot]! % this.slabs.capacity) + HEAD + this.keyLength);
    return at === storedAt ? slot : -1;
  }

  /** Bytes held now. */
  get bytes(): number { return this.total; }
  /** Records held now (entries and vary records). */
  get size(): number { return this.slots.count; }
  /** Slabs allocated so far. */
  get slabCount(): number { return this.slabs.allocated; }

  /** The slot holding `key`, -1 when none; leaves the key's bytes in `this.key` (by Node's encoder, without `write`'s argument checks) and their hash in `this.keyHash` (`set` stores them). */
  private find(key: string): number {
    if (this.key.length < key.length * 3) this.key = Buffer.allocUnsafeSlow(key.length * 3);
    const n = (this.keyLength = (this.key as Buffer & { utf8Write(s: string, at: number, n: number): number }).utf8Write(key, 0, this.key.length));
    const h = (this.keyHash = fnv1aBytes(this.key, n));
    return this.slots.find(h, n, this.sameKey);
  }

  /** Makes room at the log's head for `n` packed bytes after the key `find` left, and says where to pack them. */
  private reserve(n: number): Buffer {
    const len = align8(HEAD + this.keyLength + n);
    const stored = len + SLOT_BYTES <= this.maxBytes;
    this.recordLength = stored ? len : -1;
    if (stored) this.makeRoom(len, len + SLOT_BYTES, this.storingAt);
    const at = this.head % this.slabs.capacity;
    this.target.offset = stored && this.slabs.inOneSlab(at, len) ? at - this.slabs.slabStart(at) + HEAD + this.keyLength : 0;
    if (this.target.offset > 0) return this.slabs.slabAt(at);
    // Not stored, or spanning slabs: `set` copies it in.
    if (this.scratch.length < n) this.scratch = Buffer.allocUnsafeSlow(Math.max(n, this.scratch.length * 2));
    return this.scratch;
  }

  private readonly sameKey = (slot: number): boolean =>
    this.slabs.equals((this.slots.pos[slot]! % this.slabs.capacity) + HEAD, this.key, this.keyLength);

  private drop(slot: number): void {
    this.total -= this.slots.size[slot]!;
    if (this.decoded[slot] !== undefined) {
      this.hot.delete(this.hotKeys[slot]!);
      this.decoded[slot] = this.hotKeys[slot] = undefined;
    }
    this.slots.remove(slot);
  }

  /** Frees the oldest end of the log until `len` contiguous bytes follow `head` and `size` more fit under `maxBytes` (nothing is stored in between, so a slot freed here stays free). */
  private makeRoom(len: number, size: number, now: number): void {
    const cap = this.slabs.capacity;
    for (;;) {
      // Empty: start again at the log's first byte, so any record that fits the bound fits.
      if (this.head === this.tail) this.head = this.tail = Math.ceil(this.head / cap) * cap;
      const pad = this.slabs.skipFor(this.head, len);
      if (cap - (this.head - this.tail) >= pad + len && this.total + size <= this.maxBytes) break;
      this.advanceTail(now);
    }
    this.pad(this.slabs.skipFor(this.head, len));
  }

  private pad(n: number): void {
    if (n === 0) return;
    this.slabs.writeInt32(this.head % this.slabs.capacity, n);
    this.slabs.writeInt32((this.head % this.slabs.capacity) + 4, -1);
    this.head += n;
  }

  /** Passes the oldest record: moved to the newest end if read since written (and room allows), else dropped. */
  private advanceTail(now: number): void {
    const slabs = this.slabs;
    const from = this.tail;
    const at = from % slabs.capacity;
    const len = slabs.readInt32(at);
    const slot = slabs.readInt32(at + 4);
    this.tail += len;
    const slots = this.slots;
    if (slot < 0 || slots.pos[slot] !== from) return; // padding, or a record deleted or replaced
    if (slots.referenced[slot] === 1 && slots.expiresAt[slot]! > now && this.moveToHead(slot, at, len)) return;
    this.drop(slot);
    this.evictions++;
  }

  private moveToHead(slot: number, at: number, len: number): boolean {
    const pad = this.slabs.skipFor(this.head, len);
    if (this.slabs.capacity - (this.head - this.tail) < pad + len) return false;
    // Through a copy: the bytes just freed at the tail may be where the head writes.
    if (this.moving.length < len) this.moving = Buffer.allocUnsafeSlow(Math.max(len, this.moving.length * 2));
    this.slabs.read(at, len, this.moving, 0);
    this.pad(pad);
    this.slabs.write(this.head % this.slabs.capacity, this.moving, 0, len);
    this.slots.pos[slot] = this.head;
    this.slots.referenced[slot] = 0;
    this.head += len;
    return true;
  }
}
