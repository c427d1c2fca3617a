/**
 * When a CLOSED breaker opens. The breaker feeds a rule every outcome it
 * sees while CLOSED and forgets it (`reset`) whenever it changes state; the
 * rule answers, on each failure, whether that failure should trip it. Write
 * your own for anything the stock rules cannot say.
 */
export interface TripRule {
  /** A call succeeded while CLOSED. */
  success(now: number): void;
  /** A call failed while CLOSED; true when the breaker should open. */
  failure(now: number): boolean;
  /** Forget everything seen so far. */
  reset(): void;
}

/** Opens after `threshold` failures in a row. */
export class ConsecutiveRule implements TripRule {
  private count = 0;

  constructor(readonly threshold: number) {
    if (!Number.isInteger(threshold) || threshold < 1) {
      throw new TypeError(`consecutiveFailures: expected a positive integer, got ${threshold}`);
    }
  }

  success(): void {
    this.count = 0;
  }

  failure(): boolean {
    return ++this.count >= this.threshold;
  }

  reset(): void {
    this.count = 0;
  }
}

/** Opens when any of `rules` would; every rule sees every outcome. */
export class AnyRule implements TripRule {
  readonly rules: readonly TripRule[];

  constructor(...rules: TripRule[]) {
    this.rules = rules;
  }

  success(now: number): void {
    for (const r of this.rules) r.success(now);
  }

  failure(now: number): boolean {
    let trip = false;
    for (const r of this.rules) trip = r.failure(now) || trip;
    return trip;
  }

  reset(): void {
    for (const r of this.rules) r.reset();
  }
}

/** Never opens: for a breaker driven only by `trip()` and `reset()`. */
export class NeverRule implements TripRule {
  success(): void {}
  failure(): boolean {
    return false;
  }
  reset(): void {}
}

/** Checks the shared failure-rate settings of the window rules. */
export function checkRate(threshold: number, minimumCalls: number): void {
  if (!(threshold > 0 && threshold <= 1)) {
    throw new TypeError(`failureRate: expected a fraction in (0, 1], got ${threshold}`);
  }
  if (!Number.isInteger(minimumCalls) || minimumCalls < 1) {
    throw new TypeError(`minimumCalls: expected a positive integer, got ${minimumCalls}`);
  }
}
