import { checkRate, type TripRule } from './trip-rule.ts';

/**
 * Opens when, over the last `size` calls, at least `minimumCalls` were made
 * and the share that failed reaches `threshold`.
 */
export class CountWindowRule implements TripRule {
  private readonly outcomes: boolean[] = [];
  private next = 0;
  private failures = 0;

  constructor(readonly threshold: number, readonly size: number, readonly minimumCalls: number) {
    checkRate(threshold, minimumCalls);
    if (!Number.isInteger(size) || size < 1) throw new TypeError(`windowSize: expected a positive integer, got ${size}`);
  }

  success(): void {
    this.add(false);
  }

  failure(): boolean {
    this.add(true);
    const calls = this.outcomes.length;
    return calls >= this.minimumCalls && this.failures / calls >= this.threshold;
  }

  reset(): void {
    this.outcomes.length = 0;
    this.next = 0;
    this.failures = 0;
  }

  private add(failed: boolean): void {
    if (this.outcomes.length < this.size) {
      this.outcomes.push(failed);
    } else {
      if (this.outcomes[this.next]) this.failures--;
      this.outcomes[this.next] = failed;
    }
    if (failed) this.failures++;
    this.next = (this.next + 1) % this.size;
  }
}
