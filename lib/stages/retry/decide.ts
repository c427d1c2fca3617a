import type { SchedulerLike } from 'rxjs';
import { isGatewayError } from '../../errors.ts';
import type { GatewayRequest } from '../../types.ts';
import { fullJitter, parseRetryAfter } from './backoff.ts';
import type { RetryBudget } from './budget.ts';

/** What `onRetry` and `onRefused` receive. */
export interface RetryEvent {
  req: GatewayRequest;
  /** The attempt that failed, 1-based. */
  attempt: number;
  /** Why it failed: its response status, or its error. */
  status?: number;
  error?: unknown;
  /** The wait before the next attempt (`onRetry` only). */
  delay?: number;
}

/** Whether an error is worth another attempt: rxgate errors marked `retryable` (502, 503, 504). */
export function isRetryableError(err: unknown): boolean {
  return isGatewayError(err) && err.retryable;
}

/** A retry stage's settings, resolved once when the stage is built. */
export interface RetrySettings {
  readonly attempts: number;
  readonly statuses: ReadonlySet<number>;
  readonly retryOn: (err: unknown) => boolean;
  readonly baseMs: number;
  readonly capMs: number;
  readonly retryAfter: boolean;
  readonly attemptsHeader: string | null;
  readonly budget: RetryBudget | null;
  readonly scheduler: SchedulerLike;
  readonly random: () => number;
  readonly dateNow: () => number;
  readonly onRetry: ((event: RetryEvent) => void) | null;
  readonly onRefused: ((event: RetryEvent) => void) | null;
}

/**
 * Whether and when to try again, for every request through one `retry`
 * stage: the budget, the backoff (full jitter), `Retry-After`, the running
 * counts. Consulted only when an attempt failed.
 */
export class RetryDecider {
  readonly counts = { requests: 0, retries: 0, refused: 0 };

  constructor(readonly settings: RetrySettings) {}

  /** Counts one request (its first attempt). */
  request(): void {
    this.counts.requests++;
    this.settings.budget?.request();
  }

  /**
   * The wait before the next attempt, or null when the budget says no.
   * `immediate`: the upstream never saw the request, so there is no load to
   * back off from (the next attempt goes to another instance). A granted
   * retry holds one of the budget's concurrent slots until `done()`.
   * `announce` false: the retry is neither counted nor told to `onRetry`
   * yet: `announce(event)` does it once its attempt is sent, or
   * `refund(at)` gives the budget's share back when it never is.
   */
  decide(event: RetryEvent, retryAfter: string | undefined, immediate: boolean, announce = true): number | null {
    const s = this.settings;
    if (s.budget !== null && !s.budget.tryRetry()) {
      this.counts.refused++;
      s.onRefused?.(event);
      return null;
    }
    let delay = immediate ? 0 : fullJitter(event.attempt, s.baseMs, s.capMs, s.random);
    const asked = s.retryAfter ? parseRetryAfter(retryAfter, s.dateNow()) : null;
    if (asked !== null) delay = Math.min(asked, s.capMs);
    if (announce) this.announce({ ...event, delay });
    return delay;
  }

  /** Counts a granted retry and tells `onRetry` (at once, or once its attempt is sent: see `decide`). */
  announce(event: RetryEvent): void {
    this.counts.retries++;
    this.settings.onRetry?.(event);
  }

  /** A retry `decide` granted, unannounced, at `at` (the budget's clock) was never sent: the budget's window gets it back. */
  refund(at: number): void {
    this.settings.budget?.refund(at);
  }

  /** A retry granted by `decide` is over (its attempt answered, failed, or was torn down). */
  done(): void {
    this.settings.budget?.retryDone();
  }
}
