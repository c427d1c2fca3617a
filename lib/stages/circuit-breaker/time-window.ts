import { checkRate, type TripRule } from './trip-rule.ts';

interface Bucket {
  index: number;
  calls: number;
  failures: number;
}

/**
 * Opens when, over the last `window` ms, at least `minimumCalls` were made and
 * the share that failed reaches `threshold`. Time is cut into `buckets` slices
 * of `window / buckets` ms (slice `floor(now / width)`); the window is the
 * current slice and the `buckets - 1` before it, so memory stays constant
 * whatever the request rate.
 */
export class TimeWindowRule implements TripRule {
  private readonly width: number;
  private readonly ring: Bucket[];

  constructor(readonly threshold: number, readonly window: number, readonly minimumCalls: number, readonly buckets = 10) {
    checkRate(threshold, minimumCalls);
    if (!(window > 0) || !Number.isFinite(window)) throw new TypeError(`window: expected a positive duration, got ${window}`);
    if (!Number.isInteger(buckets) || buckets < 1) throw new TypeError(`buckets: expected a positive integer, got ${buckets}`);
    this.width = window / buckets;
    this.ring = Array.from({ length: buckets }, () => ({ index: -Infinity, calls: 0, failures: 0 }));
  }

  success(now: number): void {
    this.add(now, false);
  }

  failure(now: number): boolean {
    this.add(now, true);
    const current = Math.floor(now / this.width);
    let calls = 0;
    let failures = 0;
    for (const b of this.ring) {
      if (b.index > current - this.buckets && b.index <= current) {
        calls += b.calls;
        failures += b.failures;
      }
    }
    return calls >= this.minimumCalls && failures / calls >= this.threshold;
  }

  reset(): void {
    for (const b of this.ring) {
      b.index = -Infinity;
      b.calls = 0;
      b.failures = 0;
    }
  }

  private add(now: number, failed: boolean): void {
    const index = Math.floor(now / this.width);
    const b = this.ring[((index % this.buckets) + this.buckets) % this.buckets]!;
    if (b.index !== index) {
      b.index = index;
      b.calls = 0;
      b.failures = 0;
    }
    b.calls++;
    if (failed) b.failures++;
  }
}
