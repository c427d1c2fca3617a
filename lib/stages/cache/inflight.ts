import { fnv1a } from '../../hash.ts';
import { fillsHole } from './slots.ts';

/** `undefined`: the leader has its upstream's head (not settled: the entry is still to come). */
type Waiter<T> = (v: T | null | undefined) => void;

const INITIAL = 64;

/**
 * Request coalescing bookkeeping: the first miss for a key leads (goes
 * upstream); later misses for that key join and are called back once with
 * what the leader settled on (an entry, or null when there was nothing to
 * share and each joiner must go upstream itself).
 *
 * The led keys sit in an open-addressing table on arrays that are only
 * reallocated when it grows, not in a Map: a long-lived Map whose keys come
 * and go (one per miss) rehashes every few dozen misses into a new table that
 * V8 allocates in old space, and the tables it leaves there keep the keys of
 * that moment reachable for the scavenger, so the keys were promoted too
 * (under the full-miss bench, ~200 of the ~300 bytes promoted per request;
 * docs/gc-promotion.md). A slot is emptied as its key settles.
 */
export class Inflight<T> {
  private keys: Array<string | undefined> = new Array<string | undefined>(INITIAL).fill(undefined);
  private lists: Array<Waiter<T>[] | undefined> = new Array<Waiter<T>[] | undefined>(INITIAL).fill(undefined);
  private hashes = new Int32Array(INITIAL);
  /** 1 once the key's leader has its head: a waiter joining then is told at once. */
  private heads = new Uint8Array(INITIAL);
  private count = 0;
  /** `has(key)` is followed by `lead(key)` or `join(key)`: hash that key once. */
  private lastKey: string | undefined = undefined;
  private lastHash = 0;

  has(key: string): boolean {
    return this.slot(key, this.hash(key)) >= 0;
  }

  /**
   * Registers a leader; the returned function settles the key once (later
   * calls do nothing). Called with `undefined` it does not settle: it tells
   * the waiters, and those that join later, that the leader has its head.
   */
  lead(key: string): (v: T | null | undefined) => void {
    const list: Waiter<T>[] = [];
    const h = this.hash(key);
    const at = this.slot(key, h);
    if (at >= 0) { this.lists[at] = list; this.heads[at] = 0; }
    else this.insert(key, h, list);
    let done = false;
    return (v) => {
      if (done) return;
      if (v === undefined) {
        const i = this.slot(key, h);
        if (i >= 0 && this.lists[i] === list) this.heads[i] = 1;
        for (let j = 0; j < list.length; j++) list[j]!(undefined);
        return;
      }
      done = true;
      const i = this.slot(key, h);
      if (i >= 0 && this.lists[i] === list) this.removeAt(i);
      // a callback may leave (splice itself out) while we iterate: iterate a
      // copy; most misses have no waiters and make none
      if (list.length > 0) for (const cb of list.splice(0)) cb(v);
    };
  }

  /** Waits on a led key; returns a function that stops waiting. */
  join(key: string, cb: Waiter<T>): () => void {
    const at = this.slot(key, this.hash(key));
    if (at < 0) throw new Error(`no leader for ${key}`);
    const list = this.lists[at]!;
    list.push(cb);
    if (this.heads[at] === 1) cb(undefined);
    return () => {
      const i = list.indexOf(cb);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** Whether requests wait on the led `key` (a leader whose client left reads on for them: tee.ts). */
  waited(key: string): boolean {
    const at = this.slot(key, this.hash(key));
    return at >= 0 && this.lists[at]!.length > 0;
  }

  /** Keys led and not settled yet. */
  get size(): number {
    return this.count;
  }

  private hash(key: string): number {
    if (key === this.lastKey) return this.lastHash;
    const h = fnv1a(key);
    this.lastKey = key;
    this.lastHash = h;
    return h;
  }

  private slot(key: string, h: number): number {
    const { keys, hashes } = this;
    const mask = keys.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const k = keys[i];
      if (k === undefined) return -1;
      if (hashes[i] === h && k === key) return i;
    }
  }

  private insert(key: string, h: number, list: Waiter<T>[]): void {
    if ((this.count + 1) * 2 > this.keys.length) this.grow();
    const mask = this.keys.length - 1;
    let i = h & mask;
    while (this.keys[i] !== undefined) i = (i + 1) & mask;
    this.keys[i] = key;
    this.lists[i] = list;
    this.hashes[i] = h;
    this.heads[i] = 0;
    this.count++;
  }

  /** Linear probing's deletion: later entries of the run shift back (slots.ts's `fillsHole`), so no tombstones. */
  private removeAt(i: number): void {
    const { keys, lists, hashes, heads } = this;
    const mask = keys.length - 1;
    for (let j = (i + 1) & mask; keys[j] !== undefined; j = (j + 1) & mask) {
      if (!fillsHole(i, j, hashes[j]! & mask, mask)) continue;
      keys[i] = keys[j];
      lists[i] = lists[j];
      hashes[i] = hashes[j]!;
      heads[i] = heads[j]!;
      i = j;
    }
    keys[i] = undefined;
    lists[i] = undefined;
    this.count--;
  }

  private grow(): void {
    const { keys, lists, hashes, heads } = this;
    const n = keys.length * 2;
    this.keys = new Array<string | undefined>(n).fill(undefined);
    this.lists = new Array<Waiter<T>[] | undefined>(n).fill(undefined);
    this.hashes = new Int32Array(n);
    this.heads = new Uint8Array(n);
    this.count = 0;
    for (let i = 0; i < keys.length; i++) {
      if (keys[i] === undefined) continue;
      this.insert(keys[i]!, hashes[i]!, lists[i]!);
      if (heads[i] === 1) this.heads[this.slot(keys[i]!, hashes[i]!)] = 1;
    }
  }
}
