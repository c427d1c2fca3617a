import { gcraResult, toMicros, type GcraRule, type RateLimitResult } from './gcra.ts';
import type { RateLimitStore } from './store.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import type { Clock } from '../../types.ts';

export interface MemoryRateLimitStoreOptions {
  /**
   * Source of time, in ms (monotonic is best); overrides `runtime.now`.
   * @default runtime.now
   */
  clock?: Clock;
  /**
   * Where time comes from (its monotonic `now()`): `virtualRuntime(testScheduler)` in tests.
   * @default systemRuntime
   */
  runtime?: Runtime;
  /**
   * Most keys kept. Past it the least recently admitted key is forgotten
   * (which forgives that client: fail open, never closed).
   * @default 100_000
   */
  maxKeys?: number;
  /**
   * A key count shared with other stores (the config layer's one store per
   * bucket id); overrides `maxKeys`. Past its `max`, the store holding the
   * most keys forgets its least recently admitted one.
   * @default a budget of `maxKeys` for this store alone
   */
  budget?: KeyBudget;
}

/**
 * Keys held by several stores together, at most `max`. Past it, the store
 * holding the most keys forgets one: a flood of new keys on one route (a
 * header or address per request) forgets that route's own clients, not
 * those of a tighter limit on another route, however many that route holds,
 * as nginx's limit_req zones are apart. Only a new key or a forgotten one
 * touches it.
 */
export class KeyBudget {
  /** Keys held by `stores` together. */
  count = 0;
  readonly stores = new Set<MemoryRateLimitStore>();
  /**
   * A store holding the most keys, or null when that is not known. Kept only
   * while spends alone change sizes: a sweep or a close (after which a store
   * may grow without a spend), or a spend that takes the key from another
   * store than the one adding it, may make another store the largest, so
   * they clear it and the next spend scans the stores (one per bucket id).
   */
  private largest: MemoryRateLimitStore | null = null;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new TypeError(`memoryRateLimitStore: maxKeys must be a positive integer, got ${max}`);
  }

  /**
   * `from` added a key past `max` (it counted it): the store holding the most
   * forgets its least recently admitted key. During a flood the flooding
   * store is both, and stays the largest: no scan.
   */
  spent(from: MemoryRateLimitStore): void {
    let largest = this.largest;
    let still: boolean;
    if (largest === null) {
      largest = from;
      let second = 0;
      for (const store of this.stores) {
        if (store === from) continue;
        if (store.size > largest.size) {
          second = largest.size;
          largest = store;
        } else if (store.size > second) second = store.size;
      }
      largest.forgetOldest();
      still = largest.size >= second;
    } else {
      // Only spends changed sizes since `largest` was found: `from` grew by one.
      if (from.size > largest.size) largest = from;
      largest.forgetOldest();
      still = largest === from;
    }
    this.largest = still ? largest : null;
  }

  /** A store forgot keys other than by a spend (a sweep, a close): the largest must be found again. */
  shrank(): void {
    this.largest = null;
  }
}

const defaults = {
  runtime: systemRuntime,
  maxKeys: 100_000,
} satisfies Required<Omit<MemoryRateLimitStoreOptions, 'clock' | 'budget'>>;

/** Expired entries looked at per check: enough to keep up with inserts, O(1) per check. */
const SWEEP_PER_CHECK = 2;

/**
 * Rate-limit state in this process: one number (the key's TAT) per key, in a
 * Map ordered by last admission so expired keys are swept from the front a
 * couple per check, no timers. Synchronous: `consume` returns the result.
 * Limits are per gateway instance; use the Redis store to share them.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly tats = new Map<string, number>();
  private readonly clock: Clock;
  private readonly budget: KeyBudget;
  /** The key admitted last, so already at the back of `tats`. */
  private last: string | undefined;
  /**
   * The least recently admitted key (undefined: not known yet), and a live
   * iterator over `tats` that gave it. A Map keeps a deleted entry's slot
   * until it grows again, and a new iterator walks those from the start: in
   * a flood into a full store (one key forgotten from the front per new
   * one) that walk was up to a table's worth of slots per check, 9-73 µs
   * at 100,000 keys. The one iterator passes each slot once.
   */
  private front: string | undefined;
  private cursor: Iterator<string> | null = null;
  /**
   * The last admission's result and what it was made from. A client within
   * its rate is admitted with its TAT one emission interval ahead every
   * time, so it gets the same result, handed out again (a result is
   * read-only) rather than made anew per request.
   */
  private admittedRule: GcraRule | null = null;
  private admittedAhead = -1;
  private admitted: RateLimitResult | null = null;

  constructor(options: MemoryRateLimitStoreOptions = {}) {
    this.clock = options.clock ?? options.runtime ?? defaults.runtime;
    this.budget = options.budget ?? new KeyBudget(options.maxKeys ?? defaults.maxKeys);
    this.budget.stores.add(this);
  }

  /** Keys currently held. */
  get size(): number {
    return this.tats.size;
  }

  consume(key: string, rule: GcraRule): RateLimitResult {
    const now = toMicros(this.clock.now());
    const tats = this.tats;
    // The sweep leaves the key being checked alone: with that key the only
    // one held (one busy client, a per-route key) it has nothing to do, and
    // skipping it saves the Map iterator it would make.
    const stored = tats.get(key);
    if (tats.size !== 1 || stored === undefined) this.sweep(now, key);
    // One GCRA step (the Redis script does the same arithmetic): the stored
    // TAT, or now for a fresh or idle key, advanced by one emission interval.
    const tat = stored === undefined || stored < now ? now : stored;
    const next = tat + rule.emissionUs;
    const ahead = next - now;
    if (ahead > rule.toleranceUs) return gcraResult(rule, false, tat - now, ahead - rule.toleranceUs);
    // Re-insert at the back: the Map stays in admission order. The key
    // admitted last is there already (a busy client, or a per-route key):
    // a plain set keeps its place and skips the delete.
    if (key !== this.last) {
      tats.delete(key);
      this.last = key;
      if (key === this.front) this.front = undefined;
    }
    tats.set(key, next);
    const budget = this.budget;
    if (stored === undefined && ++budget.count > budget.max) budget.spent(this);
    if (ahead === this.admittedAhead && rule === this.admittedRule) return this.admitted!;
    const result = gcraResult(rule, true, ahead, 0);
    this.admittedRule = rule;
    this.admittedAhead = ahead;
    this.admitted = result;
    return result;
  }

  /**
   * Forgets up to SWEEP_PER_CHECK expired keys from the front. `current`, the
   * key being checked, is stepped past, not forgotten: an expired TAT counts
   * exactly as no TAT, the check admits it and moves it to the back anyway,
   * and a Map delete + re-insert of the same key costs far more than an
   * update (it is the common case for a busy client under a generous limit).
   */
  private sweep(now: number, current: string): void {
    const tats = this.tats;
    for (let n = 0; n < SWEEP_PER_CHECK; n++) {
      const key = this.oldest();
      if (key === undefined || tats.get(key)! > now) return;
      // The key checked, the last admitted and the oldest: the only one held, updated in place, still the front (review RM).
      if (key === current && key === this.last) return;
      this.front = undefined;
      if (key === current) continue;
      tats.delete(key);
      this.budget.count--;
      this.budget.shrank();
    }
  }

  /** The least recently admitted key held, or undefined. */
  private oldest(): string | undefined {
    if (this.front !== undefined) return this.front;
    this.cursor ??= this.tats.keys();
    const next = this.cursor.next();
    // Done once past the last key: an iterator that has said so never moves again.
    if (next.done === true) this.cursor = null;
    else this.front = next.value;
    return this.front;
  }

  /**
   * Forgets every key whose bucket has refilled (an expired TAT counts as no
   * TAT): for a store no route uses, which no check sweeps.
   */
  forgetRefilled(): void {
    const now = toMicros(this.clock.now());
    const before = this.tats.size;
    for (const [key, tat] of this.tats) if (tat <= now) this.tats.delete(key);
    if (this.tats.size === before) return;
    this.budget.count -= before - this.tats.size;
    this.budget.shrank();
    this.last = this.front = undefined;
    this.cursor = null;
  }

  /** Forgets the least recently admitted key (its client starts afresh): the budget is spent. */
  forgetOldest(): void {
    const oldest = this.oldest();
    if (oldest === undefined) return;
    this.tats.delete(oldest);
    this.front = undefined;
    if (oldest === this.last) this.last = undefined;
    this.budget.count--;
  }

  /** Forgets every key and leaves the budget (the config layer closes a store its routes no longer use). */
  close(): void {
    this.budget.count -= this.tats.size;
    this.budget.stores.delete(this);
    this.budget.shrank();
    this.tats.clear();
    this.last = this.front = undefined;
    this.cursor = null;
  }
}
