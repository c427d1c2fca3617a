import { mergeMap, Observable, type SchedulerLike, type Subscriber } from 'rxjs';
import type { BufferedBody } from '../../body.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import { stageHandler } from '../../subscriber.ts';
import type { Body, GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';
import { RetryBudget, type RetryBudgetOptions } from './budget.ts';
import { isRetryableError, RetryDecider, type RetryEvent } from './decide.ts';
import { bufferBody } from './replayable.ts';
import { RetryRun } from './run.ts';

export { isRetryableError, type RetryEvent };

export interface RetryOptions {
  /** Attempts in all, the first included; 1 turns retrying off. @default 3 */
  attempts?: number;
  /** Backoff base: the first retry waits up to this long. @default '100ms' */
  base?: Duration;
  /**
   * Longest wait before a retry, `Retry-After` included. @default '5s', or
   * 10 × `base` when that is longer (Envoy's max_interval default)
   */
  cap?: Duration;
  /**
   * Methods retried after the upstream may have seen the request (idempotent
   * ones). Any method is retried, at once and on another instance, when the
   * upstream never saw it (connection refused, DNS, connect timeout).
   * @default ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']
   */
  methods?: readonly string[];
  /**
   * Response statuses retried (the response is discarded; the next attempt
   * goes to another instance when there is one). None by default: like
   * nginx's `proxy_next_upstream error timeout`, only an upstream that gave
   * no response is retried.
   * @default []
   */
  statuses?: readonly number[];
  /** Errors retried (before any response). @default isRetryableError: rxgate errors marked `retryable` */
  retryOn?: (err: unknown) => boolean;
  /** A streamed request body of known length up to this many bytes is buffered so it can be replayed. @default 65536 */
  bufferLimit?: number;
  /** The retry budget: options, a shared `RetryBudget`, or false for none. @default {} (20% over 10s, 3 minimum, 3 in flight) */
  budget?: RetryBudgetOptions | RetryBudget | false;
  /** Wait as a 429 or 503's `Retry-After` says (up to `cap`) instead of the backoff. @default true */
  retryAfter?: boolean;
  /** Response header carrying the attempts made; null: none. @default 'x-gateway-attempts' */
  attemptsHeader?: string | null;
  /** Where time and chance come from: sets `scheduler`, `random`, `dateNow` and the budget's clock at once. @default systemRuntime */
  runtime?: Runtime;
  /** Where the backoff delays run. @default runtime.scheduler */
  scheduler?: SchedulerLike;
  /** Uniform in [0, 1), for the jitter. @default runtime.random */
  random?: () => number;
  /** Wall-clock ms since the epoch, for `Retry-After` dates. @default runtime.wallNow */
  dateNow?: () => number;
  /** Called before each retry's wait; after a head or connect timeout, once the attempt went to an instance. @default null */
  onRetry?: ((event: RetryEvent) => void) | null;
  /** Called when the budget refuses a retry. @default null */
  onRefused?: ((event: RetryEvent) => void) | null;
}

/** The operator, with running totals for metrics. */
export interface RetryPolicy extends Policy {
  readonly counts: { readonly requests: number; readonly retries: number; readonly refused: number };
  readonly budget: RetryBudget | null;
}

const defaults = {
  attempts: 3,
  base: '100ms',
  cap: '5s',
  methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'],
  statuses: [],
  retryOn: isRetryableError,
  bufferLimit: 64 * 1024, // 64 KiB
  budget: {},
  retryAfter: true,
  attemptsHeader: 'x-gateway-attempts',
  runtime: systemRuntime,
  scheduler: systemRuntime.scheduler,
  random: systemRuntime.random,
  dateNow: systemRuntime.wallNow,
  onRetry: null,
  onRefused: null,
} satisfies Required<RetryOptions>;

/** The cap when none is given: 5s, or 10 × base when that is longer (as Envoy's max_interval), within Node's timer limit. */
export function defaultCap(baseMs: number): number {
  return Math.min(2 ** 31 - 1, Math.max(5000, 10 * baseMs));
}

function isBuffered(body: Body): body is BufferedBody {
  return typeof (body as Partial<BufferedBody>).replay === 'function';
}

/**
 * Tries again, after exponential backoff with full jitter, when an attempt
 * fails before any response went downstream (see `RetryRun` for which
 * failures), while the retry budget allows. Each attempt after the first
 * gets its own `req.attempt` (number, instances tried), so `forward` picks
 * another instance; the response carries `x-gateway-attempts`.
 */
export function retry(options: RetryOptions = {}): RetryPolicy {
  const runtime = options.runtime ?? defaults.runtime;
  const o = { ...defaults, scheduler: runtime.scheduler, random: runtime.random, dateNow: runtime.wallNow, ...options };
  const max = o.attempts;
  if (!Number.isInteger(max) || max < 1) throw new TypeError(`retry.attempts: expected a positive integer, got ${max}`);
  if (!Number.isInteger(o.bufferLimit) || o.bufferLimit < 0) throw new TypeError(`retry.bufferLimit: expected a byte count, got ${o.bufferLimit}`);
  const statuses = new Set(o.statuses);
  for (const s of statuses) if (!Number.isInteger(s) || s < 100 || s > 599) throw new TypeError(`retry.statuses: expected HTTP statuses, got ${s}`);
  const methods = new Set(o.methods.map((m) => m.toUpperCase()));
  const budget = o.budget === false ? null : o.budget instanceof RetryBudget ? o.budget : new RetryBudget({ clock: runtime, ...o.budget });
  const baseMs = parseDuration(o.base, 'retry.base');
  const decider = new RetryDecider({
    attempts: max,
    statuses,
    retryOn: o.retryOn,
    baseMs,
    capMs: options.cap === undefined ? defaultCap(baseMs) : parseDuration(o.cap, 'retry.cap'),
    retryAfter: o.retryAfter,
    attemptsHeader: o.attemptsHeader,
    budget,
    scheduler: o.scheduler,
    random: o.random,
    dateNow: o.dateNow,
    onRetry: o.onRetry,
    onRefused: o.onRefused,
  });
  const counts = decider.counts;
  const bufferLimit = o.bufferLimit;

  if (max === 1) return Object.assign((next: Handler) => next, { counts, budget });

  /** The attempts, started when a request's Observable is subscribed. */
  function attempts(next: Handler, req: GatewayRequest, subscriber: Subscriber<GatewayResponse>): void {
    decider.request();
    const body = req.body;
    const idempotent = methods.has(req.method);
    if (body === null || isBuffered(body)) {
      new RetryRun(decider, next, req, body, idempotent, subscriber).start();
    } else if (idempotent && body.length !== null && body.length <= bufferLimit) {
      bufferBody(body).pipe(mergeMap((buffered) => new Observable<GatewayResponse>((s) => {
        new RetryRun(decider, next, { ...req, body: buffered }, buffered, true, s).start();
      }))).subscribe(subscriber);
    } else {
      // Streamed as it comes: retried only if the upstream never saw it.
      new RetryRun(decider, next, req, null, false, subscriber).start();
    }
  }

  // One object per request (a StageCall; none when the stage before starts
  // this one directly), and the attempts subscribed by
  // hand (see RetryRun): a request that needs no retry costs a run and one
  // subscriber, not rxjs retry's and map's machinery.
  const policy = (next: Handler): Handler => stageHandler('retryHandler', attempts, next);
  return Object.assign(policy, { counts, budget });
}
