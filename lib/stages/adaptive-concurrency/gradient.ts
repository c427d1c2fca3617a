/** Settings of the gradient limit, resolved (ms). */
export interface GradientConfig {
  readonly initialLimit: number;
  readonly minLimit: number;
  readonly maxLimit: number;
  /** Samples are averaged over windows this long; the limit moves once per window. */
  readonly windowMs: number;
  /** The minimum-RTT baseline is the lowest window average seen over this long (then it is measured afresh). */
  readonly minRttWindowMs: number;
  /** Latency above the baseline that counts as no queueing, as a share of it (Envoy's buffer, 0.1 = 10%). */
  readonly buffer: number;
}

/**
 * An adaptive concurrency limit in the style of Envoy's gradient controller
 * and Netflix's concurrency-limits: each window, the limit is multiplied by
 * gradient = (baseline × (1 + buffer)) / window's average latency, kept in
 * [0.5, 2], and given headroom of √limit, within [minLimit, maxLimit]. When
 * latency rises over the baseline (queueing upstream) the limit shrinks;
 * while it stays at the baseline the limit grows. The baseline is the
 * lowest window average of the last `minRttWindow`, so it follows a service
 * that got slower for good. Synchronous, on an injected clock.
 */
export class GradientLimit {
  limit: number;
  inFlight = 0;
  /** The baseline (ms); Infinity before the first window. */
  minRtt = Infinity;
  private nextMinRtt = Infinity;
  private minRttUntil: number;
  private windowStart: number;
  private sum = 0;
  private count = 0;

  constructor(private readonly c: GradientConfig, now: number) {
    if (!(c.minLimit >= 1 && c.minLimit <= c.initialLimit && c.initialLimit <= c.maxLimit)) {
      throw new TypeError(`adaptiveConcurrency: expected 1 ≤ minLimit ≤ initialLimit ≤ maxLimit, got ${c.minLimit}, ${c.initialLimit}, ${c.maxLimit}`);
    }
    if (!(c.windowMs > 0)) throw new TypeError('adaptiveConcurrency.window: expected a positive duration');
    this.limit = c.initialLimit;
    this.windowStart = now;
    this.minRttUntil = now + c.minRttWindowMs;
  }

  /** Takes a slot; false when `limit` requests are in flight already. */
  tryAcquire(): boolean {
    if (this.inFlight >= Math.floor(this.limit)) return false;
    this.inFlight++;
    return true;
  }

  /** Gives a slot back. */
  release(): void {
    this.inFlight--;
  }

  /** A request answered `rttMs` after it started, at `now`. */
  sample(rttMs: number, now: number): void {
    if (now - this.windowStart >= this.c.windowMs && this.count > 0) this.update(now);
    this.sum += rttMs;
    this.count++;
  }

  private update(now: number): void {
    const avg = this.sum / this.count;
    this.sum = 0;
    this.count = 0;
    this.windowStart = now;
    if (now >= this.minRttUntil) {
      // A new baseline period: the last one's lowest window becomes the baseline.
      this.minRtt = Math.min(this.nextMinRtt, avg);
      this.nextMinRtt = Infinity;
      this.minRttUntil = now + this.c.minRttWindowMs;
    }
    this.nextMinRtt = Math.min(this.nextMinRtt, avg);
    if (avg < this.minRtt) this.minRtt = avg;
    const gradient = Math.min(2, Math.max(0.5, (this.minRtt * (1 + this.c.buffer)) / Math.max(avg, 1e-6)));
    const next = this.limit * gradient + Math.sqrt(this.limit);
    this.limit = Math.min(this.c.maxLimit, Math.max(this.c.minLimit, next));
  }
}
