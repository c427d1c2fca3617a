import { Subject, type Observable } from 'rxjs';
import { resolveBreakerOptions, type BreakerConfig, type BreakerOptions, type BreakerState, type BreakerTransition } from './options.ts';
import type { TripRule } from './trip-rule.ts';

export { resolveBreakerOptions, type BreakerOptions, type BreakerState, type BreakerTransition };

/** Leave to make one call, from `Breaker.tryAcquire`. Settle it exactly once. */
export interface BreakerPermit {
  /** Clock time the call was admitted: slow calls are measured from here. */
  readonly startedAt: number;
  /** Whether it is a HALF_OPEN probe. */
  readonly probe: boolean;
}

/**
 * What a permit holds, filled in by `Breaker.acquire`: a `Permit` of its
 * own (`tryAcquire`), or the fields of an object the caller makes anyway
 * (the operator's subscriber), so a call costs no permit object.
 */
export interface PermitSlot extends BreakerPermit {
  /** The breaker's generation when admitted: a verdict from an older one is ignored. */
  generation: number;
  startedAt: number;
  probe: boolean;
  /** Settled already (success, failure or release): later ones count for nothing. */
  settled: boolean;
}

class Permit implements PermitSlot {
  generation = 0;
  startedAt = 0;
  probe = false;
  settled = false;
}

type State =
  | { name: 'closed'; rule: TripRule }
  | { name: 'open'; until: number }
  | { name: 'half-open'; inFlight: number; successes: number };

/**
 * A circuit breaker's bookkeeping, synchronous and clock-driven: ask
 * `tryAcquire()` before a call and settle the permit with `success`,
 * `failure` or `release` (neither: the client went away). Outcomes of calls
 * admitted before the last state change are ignored. OPEN turns HALF_OPEN
 * lazily, on the first look after the reset timeout.
 */
export class Breaker {
  readonly key: string;
  private readonly config: BreakerConfig;
  private readonly rule: TripRule;
  private current: State;
  /** Bumped on every transition; a permit from an older one no longer counts. */
  private generation = 0;
  /** Opens since the last close, for the reset backoff. */
  private opens = 0;
  private readonly transitions = new Subject<BreakerTransition>();
  /** Every state change, as it happens (hot, no replay). */
  readonly state$: Observable<BreakerTransition> = this.transitions.asObservable();
  /** Running totals: entries into each state, and calls rejected. */
  readonly counts = { closed: 0, open: 0, 'half-open': 0, rejected: 0 };

  constructor(options: BreakerOptions = {}) {
    this.config = resolveBreakerOptions(options);
    this.key = this.config.key;
    this.rule = this.config.rule();
    this.current = { name: 'closed', rule: this.rule };
  }

  /** The state now (turning OPEN into HALF_OPEN when its time has come). */
  get state(): BreakerState {
    return this.look().name;
  }

  /** Ms until an OPEN breaker admits probes; 0 when it is not OPEN. */
  retryAfter(): number {
    const s = this.look();
    return s.name === 'open' ? Math.max(0, s.until - this.config.clock.now()) : 0;
  }

  /** A permit for one call, or null: rejected (OPEN, or HALF_OPEN with every probe slot taken). */
  tryAcquire(): BreakerPermit | null {
    const permit = new Permit();
    return this.acquire(permit) ? permit : null;
  }

  /**
   * `tryAcquire` into `slot`, an unsettled permit of the caller's: true
   * when admitted (then settle `slot` as a permit), false when rejected.
   * `stamp: false` leaves `slot.startedAt` alone when this breaker does not
   * measure slow calls (`slowCallDuration` null): only that measure reads
   * it, and the clock read is saved (the operator's own subscriber).
   */
  acquire(slot: PermitSlot, stamp = true): boolean {
    const s = this.look();
    let probe = false;
    if (s.name === 'half-open' && s.inFlight < this.config.probes) {
      s.inFlight++;
      probe = true;
    } else if (s.name !== 'closed') {
      this.counts.rejected++;
      return false;
    }
    slot.generation = this.generation;
    if (stamp || this.config.slowMs !== Infinity) slot.startedAt = this.config.clock.now();
    slot.probe = probe;
    slot.settled = false;
    return true;
  }

  /** The call's response head arrived and was fine (it still fails if it was slow). */
  success(permit: BreakerPermit): void {
    const p = this.claim(permit);
    if (p === null) return;
    const now = this.config.clock.now();
    if (now - p.startedAt >= this.config.slowMs) {
      this.fail(now);
      return;
    }
    const s = this.current;
    if (s.name === 'closed') {
      s.rule.success(now);
    } else if (s.name === 'half-open') {
      s.inFlight--;
      if (++s.successes >= this.config.probeSuccesses) this.close();
    }
  }

  /** The call failed. */
  failure(permit: BreakerPermit): void {
    if (this.claim(permit) !== null) this.fail(this.config.clock.now());
  }

  /** The call ended without a verdict (client abort): frees its probe slot, counts for nothing. */
  release(permit: BreakerPermit): void {
    if (this.claim(permit) === null) return;
    if (this.current.name === 'half-open') this.current.inFlight--;
  }

  /** Forces OPEN now, for the usual reset timeout. */
  trip(): void {
    if (this.current.name !== 'open') this.open();
  }

  /** Forces CLOSED now and forgets the reset backoff. */
  reset(): void {
    if (this.current.name !== 'closed') this.close();
  }

  private claim(permit: BreakerPermit): PermitSlot | null {
    const p = permit as PermitSlot;
    if (p.settled) return null;
    p.settled = true;
    return p.generation === this.generation ? p : null;
  }

  private fail(now: number): void {
    const s = this.current;
    if (s.name === 'half-open' || (s.name === 'closed' && s.rule.failure(now))) this.open();
  }

  private look(): State {
    const s = this.current;
    if (s.name === 'open' && this.config.clock.now() >= s.until) {
      this.move({ name: 'half-open', inFlight: 0, successes: 0 });
    }
    return this.current;
  }

  private open(): void {
    const { resetMs, backoff, maxResetMs } = this.config;
    const grown = resetMs * backoff ** this.opens;
    // Infinity (or 0 × Infinity) once the backoff has long passed the cap
    const timeout = resetMs === 0 ? 0 : Number.isFinite(grown) ? Math.min(maxResetMs, grown) : maxResetMs;
    this.opens++;
    this.move({ name: 'open', until: this.config.clock.now() + timeout }, timeout);
  }

  private close(): void {
    this.opens = 0;
    this.move({ name: 'closed', rule: this.rule });
  }

  private move(next: State, resetTimeout?: number): void {
    const from = this.current.name;
    this.current = next;
    this.generation++;
    if (next.name === 'open') this.rule.reset();
    this.counts[next.name]++;
    const t: BreakerTransition = { key: this.key, from, to: next.name, at: this.config.clock.now() };
    if (resetTimeout !== undefined) t.resetTimeout = resetTimeout;
    this.config.onTransition?.(t);
    this.transitions.next(t);
  }
}
