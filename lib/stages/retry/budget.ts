import { parseDuration, type Duration } from '../../duration.ts';
import { systemRuntime } from '../../runtime.ts';
import type { Clock } from '../../types.ts';

export interface RetryBudgetOptions {
  /** Retries may add at most this share to the request rate. @default 0.2 */
  ratio?: number;
  /** The window requests and retries are counted over. @default '10s' */
  window?: Duration;
  /** Retries allowed per window whatever the traffic, so a quiet service can still retry. @default 3 */
  minRetries?: number;
  /**
   * Retries allowed in flight at once whatever the window says (Envoy's
   * `min_retry_concurrency`): one instance's outage cannot spend the budget
   * and leave every later request without its retry.
   * @default 3
   */
  minConcurrent?: number;
  /** Slices the window is cut into. @default 10 */
  buckets?: number;
  /** Source of time, in ms. @default systemRuntime */
  clock?: Clock;
}

const defaults = {
  ratio: 0.2,
  window: '10s',
  minRetries: 3,
  minConcurrent: 3,
  buckets: 10,
  clock: systemRuntime,
} satisfies Required<RetryBudgetOptions>;

interface Bucket {
  index: number;
  requests: number;
  retries: number;
}

/**
 * Caps retries across all requests of a service, so retries cannot multiply
 * the load on an upstream that is already failing: a retry is granted while
 * fewer than `minConcurrent` granted retries are in flight, or while over
 * the window retries ≤ `minRetries + ratio × requests`. Count every request
 * with `request()`, ask `tryRetry()` before each retry and call
 * `retryDone()` once that retry's attempt is over. Buckets work as in the
 * breaker's time window: slice `floor(now / (window / buckets))`, the window
 * being the current slice and the `buckets - 1` before it.
 */
export class RetryBudget {
  private readonly ratio: number;
  private readonly minRetries: number;
  private readonly minConcurrent: number;
  private readonly buckets: number;
  private readonly width: number;
  private readonly clock: Clock;
  private readonly ring: Bucket[];
  /** Running totals: requests seen, retries granted, retries refused. */
  readonly counts = { requests: 0, retries: 0, refused: 0 };
  /** Granted retries whose attempt is not over yet. */
  active = 0;

  constructor(options: RetryBudgetOptions = {}) {
    const o = { ...defaults, ...options };
    if (!(o.ratio >= 0) || !Number.isFinite(o.ratio)) throw new TypeError(`budget.ratio: expected a non-negative number, got ${o.ratio}`);
    if (!Number.isInteger(o.minRetries) || o.minRetries < 0) throw new TypeError(`budget.minRetries: expected a non-negative integer, got ${o.minRetries}`);
    if (!Number.isInteger(o.minConcurrent) || o.minConcurrent < 0) throw new TypeError(`budget.minConcurrent: expected a non-negative integer, got ${o.minConcurrent}`);
    if (!Number.isInteger(o.buckets) || o.buckets < 1) throw new TypeError(`budget.buckets: expected a positive integer, got ${o.buckets}`);
    const windowMs = parseDuration(o.window, 'budget.window');
    if (windowMs <= 0) throw new TypeError('budget.window: expected a positive duration');
    this.ratio = o.ratio;
    this.minRetries = o.minRetries;
    this.minConcurrent = o.minConcurrent;
    this.buckets = o.buckets;
    this.width = windowMs / o.buckets;
    this.clock = o.clock;
    this.ring = Array.from({ length: o.buckets }, () => ({ index: -Infinity, requests: 0, retries: 0 }));
  }

  /** Counts one request (a first attempt). */
  request(): void {
    this.counts.requests++;
    this.bucket().requests++;
  }

  /**
   * Spends one retry if the budget has one; false (and counted as refused)
   * if not. A granted retry is in flight until `retryDone()`.
   */
  tryRetry(): boolean {
    if (this.active >= this.minConcurrent) {
      const { requests, retries } = this.window();
      if (retries + 1 > this.minRetries + this.ratio * requests) {
        this.counts.refused++;
        return false;
      }
    }
    this.active++;
    this.counts.retries++;
    this.bucket().retries++;
    return true;
  }

  /**
   * Gives back a retry `tryRetry` granted at `at` (ms, this budget's clock)
   * whose attempt was never sent (no other instance after a head timeout):
   * the window counts retries that reach an upstream. `retryDone()` still
   * frees its slot.
   */
  refund(at: number): void {
    this.counts.retries--;
    const index = Math.floor(at / this.width);
    const b = this.ring[((index % this.buckets) + this.buckets) % this.buckets]!;
    if (b.index === index && b.retries > 0) b.retries--;
  }

  /** Now, on this budget's clock (what `refund` takes). */
  now(): number {
    return this.clock.now();
  }

  /** The attempt of a retry `tryRetry` granted is over (answered, failed or torn down). */
  retryDone(): void {
    if (this.active > 0) this.active--;
  }

  /** Requests and retries in the window now. */
  window(): { requests: number; retries: number } {
    const current = Math.floor(this.clock.now() / this.width);
    let requests = 0;
    let retries = 0;
    for (const b of this.ring) {
      if (b.index > current - this.buckets && b.index <= current) {
        requests += b.requests;
        retries += b.retries;
      }
    }
    return { requests, retries };
  }

  private bucket(): Bucket {
    const index = Math.floor(this.clock.now() / this.width);
    const b = this.ring[((index % this.buckets) + this.buckets) % this.buckets]!;
    if (b.index !== index) {
      b.index = index;
      b.requests = 0;
      b.retries = 0;
    }
    return b;
  }
}
