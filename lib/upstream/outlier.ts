/**
 * Passive health of one upstream instance, from the traffic itself (nginx's
 * `max_fails`/`fail_timeout`, Envoy's outlier detection): `ejectAfter`
 * connection failures or timeouts in a row take it out of rotation for
 * `ejectFor`; each further ejection before a success doubles that, up to
 * `maxEjectFor`. Any response head is a success and forgives the past.
 * Synchronous, on an injected clock; `Service` consults it when picking.
 */
export class OutlierTracker {
  /** Clock time until which the instance is out; -Infinity when it never was. */
  ejectedUntil = -Infinity;
  /** Ejections since the last success (grows the next ejection's length). */
  ejections = 0;
  private failures = 0;
  /** A lost reused connection may be forgiven once per answer the instance gives (see `forgiveRace`). */
  private raceForgivable = true;

  constructor(private readonly config: OutlierConfig) {}

  /**
   * Whether a reused connection lost under a request is forgiven as the
   * idle-timeout race (no strike): once, until the instance answers again.
   * An instance that breaks every response (a head cut short, on a fresh
   * connection whose socket has read some bytes already) strikes from its
   * second failure on (review RR3).
   */
  forgiveRace(): boolean {
    if (!this.raceForgivable) return false;
    this.raceForgivable = false;
    return true;
  }

  /** Whether the instance is out of rotation at clock time `now`. */
  ejected(now: number): boolean {
    return now < this.ejectedUntil;
  }

  /** A response head arrived from the instance. */
  success(): void {
    // The usual case (nothing to forgive) writes nothing.
    if (!this.raceForgivable) this.raceForgivable = true;
    if (this.failures !== 0 || this.ejections !== 0) {
      this.failures = 0;
      this.ejections = 0;
    }
  }

  /**
   * The instance refused a connection or timed out at `now`. Returns the
   * clock time it is ejected until when this failure ejected it, else null.
   * With `mayEject` false (the pool's ejection share is spent) it stays in,
   * its strikes kept, so its next failure tries again.
   */
  failure(now: number, mayEject = true): number | null {
    const { ejectAfter, ejectMs, maxEjectMs } = this.config;
    if (ejectMs === 0) return null;
    if (++this.failures < ejectAfter) return null;
    if (!mayEject) {
      this.failures = ejectAfter - 1;
      return null;
    }
    this.failures = 0;
    const grown = ejectMs * 2 ** this.ejections;
    this.ejections++;
    this.ejectedUntil = now + Math.min(maxEjectMs, grown);
    return this.ejectedUntil;
  }
}

/** Ejection settings, resolved (ms) by `Service`. */
export interface OutlierConfig {
  /** Failures in a row that eject. */
  readonly ejectAfter: number;
  /** First ejection length; 0 turns ejection off. */
  readonly ejectMs: number;
  /** Longest ejection. */
  readonly maxEjectMs: number;
}
