import type { Subscription } from 'rxjs';
import { after, type Runtime } from '../runtime.ts';

/**
 * The longest gap allowed between two chunks of a response body, on the
 * runtime's clock: one timer per response, re-armed for what is left rather
 * than reset on every chunk. Time while the client holds the body back
 * (backpressure) does not count.
 */
export class BodyGap {
  private last: number;
  private paused = false;
  private timer: Subscription | null = null;

  constructor(private readonly runtime: Runtime, private readonly limitMs: number, private readonly onGap: () => void) {
    this.last = runtime.now();
    this.arm(limitMs);
  }

  /** A chunk arrived. */
  touch(): void {
    this.last = this.runtime.now();
  }

  /** The client stopped (true) or resumed (false) taking the body. */
  hold(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.touch();
  }

  stop(): void {
    this.timer?.unsubscribe();
    this.timer = null;
  }

  private arm(ms: number): void {
    this.timer = after(this.runtime, ms, () => this.check());
  }

  private check(): void {
    const quiet = this.runtime.now() - this.last;
    if (this.paused || quiet < this.limitMs) {
      this.arm(this.paused ? this.limitMs : this.limitMs - quiet);
      return;
    }
    this.timer = null;
    this.onGap();
  }
}
