import type { Duration } from '../duration.ts';

export interface HealthOptions {
  /** Path probed with GET on every instance; no active checks when absent. */
  path?: string;
  /** Time between probes (each starts at a random phase within the first). @default '5s' */
  interval?: Duration;
  /** A probe not done in this time (connect, TLS, head and body) failed. @default '2s' */
  timeout?: Duration;
  /** Statuses that pass. @default every 2xx and 3xx (nginx's) */
  expectedStatuses?: number[];
  /** Consecutive failed probes that mark an instance down. @default 2 */
  unhealthyAfter?: number;
  /** Consecutive good probes that bring it back. @default 2 */
  healthyAfter?: number;
}

/**
 * Health of one upstream instance from probe outcomes: UP until
 * `unhealthyAfter` failures in a row, then DOWN until `healthyAfter`
 * successes in a row. Synchronous; the probing lives in `Service`.
 */
export class HealthTracker {
  healthy: boolean;
  private streak = 0;
  /** Out of rotation until its first check: the first pass brings it in (Envoy's first_check_). */
  private pending: boolean;
  private readonly unhealthyAfter: number;
  private readonly healthyAfter: number;

  /** `joining`: an instance discovery added to a running service, unhealthy until a check passes (Envoy's FAILED_ACTIVE_HC on hosts added). */
  constructor(options: HealthOptions, joining = false) {
    this.healthy = !joining;
    this.pending = joining;
    this.unhealthyAfter = options.unhealthyAfter ?? 2;
    this.healthyAfter = options.healthyAfter ?? 2;
    if (!Number.isInteger(this.unhealthyAfter) || !Number.isInteger(this.healthyAfter) || this.unhealthyAfter < 1 || this.healthyAfter < 1) {
      throw new TypeError('health thresholds must be whole numbers of at least 1');
    }
  }

  /** Records one probe; returns true when the state changed. */
  record(ok: boolean): boolean {
    if (this.pending) {
      this.pending = false;
      if (ok) return (this.healthy = true);
    }
    if (ok === this.healthy) {
      this.streak = 0;
      return false;
    }
    this.streak++;
    if (this.streak >= (this.healthy ? this.unhealthyAfter : this.healthyAfter)) {
      this.healthy = !this.healthy;
      this.streak = 0;
      return true;
    }
    return false;
  }
}
