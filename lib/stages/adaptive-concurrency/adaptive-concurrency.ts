import { Observable } from 'rxjs';
import { parseDuration, type Duration } from '../../duration.ts';
import { ServiceUnavailableError } from '../../errors.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import type { GatewayResponse, Policy } from '../../types.ts';
import { GradientLimit } from './gradient.ts';

export interface AdaptiveConcurrencyOptions {
  /** @default 20 */
  initialLimit?: number;
  /** @default 3 */
  minLimit?: number;
  /** @default 1000 */
  maxLimit?: number;
  /** Latency samples are averaged over this long; the limit moves once per window. @default '100ms' */
  window?: Duration;
  /** The baseline is the lowest window of this long. @default '30s' */
  minRttWindow?: Duration;
  /** Latency over the baseline still taken as no queueing (share). @default 0.1 */
  buffer?: number;
  /** @default systemRuntime */
  runtime?: Runtime;
  /** Hears of each request refused, with the limit then. */
  onLimited?: (limit: number) => void;
}

/** A slot comes back as soon as a request in flight ends: `Retry-After: 1`, as `429 TOO_MANY_IN_FLIGHT` has (shared, never written to). */
const RETRY_SOON: Readonly<Record<string, string>> = Object.freeze({ 'retry-after': '1' });

const defaults = {
  initialLimit: 20, minLimit: 3, maxLimit: 1000, window: '100ms', minRttWindow: '30s', buffer: 0.1,
  runtime: systemRuntime, onLimited: () => undefined,
} satisfies Required<AdaptiveConcurrencyOptions>;

/** The limiter behind `adaptiveConcurrency`; share one per service. */
export function gradientLimit(options: AdaptiveConcurrencyOptions = {}): GradientLimit {
  const o = { ...defaults, ...options };
  return new GradientLimit({
    initialLimit: o.initialLimit, minLimit: o.minLimit, maxLimit: o.maxLimit, buffer: o.buffer,
    windowMs: parseDuration(o.window, 'adaptiveConcurrency.window'),
    minRttWindowMs: parseDuration(o.minRttWindow, 'adaptiveConcurrency.minRttWindow'),
  }, o.runtime.now());
}

/**
 * Adaptive concurrency: a request over the limit gets `503
 * SERVICE_UNAVAILABLE` at once (never queued), with `Retry-After: 1`; the others hold a slot until
 * their exchange ends, and their latency to the response head moves the
 * limit (see `GradientLimit`).
 */
export function adaptiveConcurrency(limiter: GradientLimit, options: Pick<AdaptiveConcurrencyOptions, 'runtime' | 'onLimited'> = {}): Policy {
  const runtime = options.runtime ?? systemRuntime;
  const onLimited = options.onLimited ?? defaults.onLimited;
  return (next) => function limited(req) {
    return new Observable<GatewayResponse>((subscriber) => {
      if (!limiter.tryAcquire()) {
        onLimited(limiter.limit);
        subscriber.error(new ServiceUnavailableError(`concurrency limit (${Math.floor(limiter.limit)}) reached`, { sent: false, headers: RETRY_SOON }));
        return undefined;
      }
      const start = runtime.now();
      let held = true;
      let headed = false;
      const release = (): void => {
        if (!held) return;
        held = false;
        limiter.release();
      };
      const sub = next(req).subscribe({
        next(res) {
          if (!headed) {
            headed = true;
            const now = runtime.now();
            limiter.sample(now - start, now);
          }
          subscriber.next(res);
        },
        error(err) {
          release();
          subscriber.error(err);
        },
        complete() {
          release();
          subscriber.complete();
        },
      });
      return () => {
        release();
        sub.unsubscribe();
      };
    });
  };
}
