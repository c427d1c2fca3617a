import { asyncScheduler, mergeMap, Observable, Subscriber, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import type { BufferedBody } from '../../body.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { isGatewayError } from '../../errors.ts';
import { getHeader } from '../../headers.ts';
import { fullJitter, parseRetryAfter } from './backoff.ts';
import { RetryBudget, type RetryBudgetOptions } from './budget.ts';
import { bufferBody } from './replayable.ts';
import type { Body, GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';


export interface RetryOptions {
  /** Attempts in all, the first included; 1 turns retrying off. @default 3 */
  attempts?: number;
  /** Backoff base: the first retry waits up to this long. @default '100ms' */
  base?: Duration;
  /** Longest wait before a retry, `Retry-After` included. @default '5s' */
  cap?: Duration;
  /** Methods that may be retried (idempotent ones). @default ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'] */
  methods?: readonly string[];
  /** Response statuses retried (the response is discarded). @default [502, 503, 504] */
  statuses?: readonly number[];
  /** Errors retried (before any response). @default isRetryableError: rxgate errors marked `retryable` */
  retryOn?: (err: unknown) => boolean;
  /** A streamed request body of known length up to this many bytes is buffered so it can be replayed. @default 65536 */
  bufferLimit?: number;
  /** The retry budget: options, a shared `RetryBudget`, or false for none. @default {} (20% over 10s, 3 minimum) */
  budget?: RetryBudgetOptions | RetryBudget | false;
  /** Wait as a 429 or 503's `Retry-After` says (up to `cap`) instead of the backoff. @default true */
  retryAfter?: boolean;
  /** Response header carrying the attempts made; null: none. @default 'x-gateway-attempts' */
  attemptsHeader?: string | null;
  /** Where the backoff delays run. @default asyncScheduler */
  scheduler?: SchedulerLike;
  /** Uniform in [0, 1), for the jitter. @default Math.random */
  random?: () => number;
  /** Wall-clock ms since the epoch, for `Retry-After` dates. @default Date.now */
  dateNow?: () => number;
  /** Called before each retry's wait. @default null */
  onRetry?: ((event: RetryEvent) => void) | null;
  /** Called when the budget refuses a retry. @default null */
  onRefused?: ((event: RetryEvent) => void) | null;
}

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

/** The operator, with running totals for metrics. */
export interface RetryPolicy extends Policy {
  readonly counts: { readonly requests: number; readonly retries: number; readonly refused: number };
  readonly budget: RetryBudget | null;
}

/** Whether an error is worth another attempt: rxgate errors marked `retryable` (502, 503, 504). */
export function isRetryableError(err: unknown): boolean {
  return isGatewayError(err) && err.retryable;
}

const defaults = {
  attempts: 3,
  base: '100ms',
  cap: '5s',
  methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'],
  statuses: [502, 503, 504],
  retryOn: isRetryableError,
  bufferLimit: 64 * 1024, // 64 KiB
  budget: {},
  retryAfter: true,
  attemptsHeader: 'x-gateway-attempts',
  scheduler: asyncScheduler,
  random: Math.random,
  dateNow: Date.now,
  onRetry: null,
  onRefused: null,
} satisfies Required<RetryOptions>;

/** Set by `circuitBreaker` on its fallback answer: the circuit is open, another attempt cannot help. */
const kCircuitFallback = Symbol.for('rxgate.circuitFallback');

function isBuffered(body: Body): body is BufferedBody {
  return typeof (body as Partial<BufferedBody>).replay === 'function';
}

/**
 * Tries again, after exponential backoff with full jitter, when an attempt
 * fails before any response went downstream: on a retryable error, or on a
 * retryable status (that response is discarded, its body destroyed). Only
 * idempotent methods with a replayable body (none, a `BufferedBody`, or one
 * short enough to buffer first), and only while the retry budget allows.
 * Each attempt sets `req.locals.attempt`, `attempts` and `avoid`; the
 * response carries `x-gateway-attempts`.
 */
export function retry(options: RetryOptions = {}): RetryPolicy {
  const o = { ...defaults, ...options };
  const max = o.attempts;
  if (!Number.isInteger(max) || max < 1) throw new TypeError(`retry.attempts: expected a positive integer, got ${max}`);
  const baseMs = parseDuration(o.base, 'retry.base');
  const capMs = parseDuration(o.cap, 'retry.cap');
  if (!Number.isInteger(o.bufferLimit) || o.bufferLimit < 0) throw new TypeError(`retry.bufferLimit: expected a byte count, got ${o.bufferLimit}`);
  const methods = new Set(o.methods.map((m) => m.toUpperCase()));
  const statuses = new Set(o.statuses);
  for (const s of statuses) if (!Number.isInteger(s) || s < 100 || s > 599) throw new TypeError(`retry.statuses: expected HTTP statuses, got ${s}`);
  const budget = o.budget === false ? null : o.budget instanceof RetryBudget ? o.budget : new RetryBudget(o.budget);
  const { retryOn, attemptsHeader, scheduler, random, dateNow, onRetry, onRefused } = o;
  const counts = { requests: 0, retries: 0, refused: 0 };

  if (max === 1) return Object.assign((next: Handler) => next, { counts, budget });

  /** The wait before the next attempt, or null when the budget says no. */
  function decide(event: RetryEvent, retryAfter: string | undefined): number | null {
    if (budget !== null && !budget.tryRetry()) {
      counts.refused++;
      onRefused?.(event);
      return null;
    }
    counts.retries++;
    let delay = fullJitter(event.attempt, baseMs, capMs, random);
    const asked = o.retryAfter ? parseRetryAfter(retryAfter, dateNow()) : null;
    if (asked !== null) delay = Math.min(asked, capMs);
    onRetry?.({ ...event, delay });
    return delay;
  }

  const core: RetryCore = { statuses, retryOn, attemptsHeader, scheduler, decide };

  function attempts$(next: Handler, req: GatewayRequest, body: BufferedBody | null, limit: number): Observable<GatewayResponse> {
    return new Observable<GatewayResponse>((subscriber) => new RetryRun(core, next, req, body, limit, subscriber).start());
  }

  // One Observable per request, and the attempts subscribed by hand (see
  // RetryRun): a request that needs no retry costs a run and one subscriber,
  // not rxjs retry's and map's machinery.
  const policy = (next: Handler): Handler => function retryHandler(req) {
    return new Observable<GatewayResponse>((subscriber) => {
      counts.requests++;
      budget?.request();
      const body = req.body;
      let limit = 1;
      let replay: BufferedBody | null = null;
      if (methods.has(req.method)) {
        if (body === null) {
          limit = max;
        } else if (isBuffered(body)) {
          limit = max;
          replay = body;
        } else if (body.length !== null && body.length <= o.bufferLimit) {
          bufferBody(body).pipe(mergeMap((buffered) => attempts$(next, req, buffered, max))).subscribe(subscriber);
          return;
        }
      }
      new RetryRun(core, next, req, replay, limit, subscriber).start();
    });
  };
  return Object.assign(policy, { counts, budget });
}

/** What every request through one `retry` stage shares. */
interface RetryCore {
  readonly statuses: ReadonlySet<number>;
  readonly retryOn: (err: unknown) => boolean;
  readonly attemptsHeader: string | null;
  readonly scheduler: SchedulerLike;
  /** The wait before the next attempt, or null when the budget says no. */
  readonly decide: (event: RetryEvent, retryAfter: string | undefined) => number | null;
}

/**
 * One request's attempts, one at a time, and the waits between them: what
 * `defer` + `map` + rxjs `retry({ delay })` did, written out, in the same
 * order of events. An attempt that fails before its response went downstream
 * (a retryable error, or a retryable status, its body destroyed) is torn down
 * (aborting its upstream request) and the next one starts after the wait;
 * unsubscribing stops the attempt under way or the wait.
 */
class RetryRun {
  attempt = 0;
  /** Whether a response went downstream: nothing is retried after that. */
  emitted = false;
  readonly avoid: string[] = [];

  constructor(
    readonly core: RetryCore,
    readonly next: Handler,
    readonly req: GatewayRequest,
    readonly body: BufferedBody | null,
    readonly limit: number,
    readonly downstream: Subscriber<GatewayResponse>,
  ) {}

  start(): void {
    const req = this.req;
    const attempt = ++this.attempt;
    let source: Observable<GatewayResponse>;
    try {
      const used = req.locals.upstream;
      if (attempt > 1 && typeof used === 'string' && !this.avoid.includes(used)) this.avoid.push(used);
      req.locals.attempt = attempt;
      req.locals.attempts = attempt;
      req.locals.avoid = this.avoid;
      if (this.body !== null) req.body = this.body.replay();
      source = this.next(req);
    } catch (err) {
      this.failed(err, null);
      return;
    }
    source.subscribe(new AttemptSubscriber(this));
  }

  /** An attempt's response head. */
  response(res: GatewayResponse, from: AttemptSubscriber): void {
    const { core, attempt } = this;
    try {
      if (attempt < this.limit && core.statuses.has(res.status) && !(kCircuitFallback in res)) {
        const ra = res.status === 429 || res.status === 503 ? getHeader(res.headers, 'retry-after') : undefined;
        const delay = core.decide({ req: this.req, attempt, status: res.status }, ra);
        if (delay !== null) {
          res.body?.destroy();
          this.again(delay, from);
          return;
        }
      }
      this.emitted = true;
      let out = res;
      if (core.attemptsHeader !== null) {
        const headers = res.headers.slice();
        headers.push(core.attemptsHeader, String(attempt));
        out = { ...res, headers };
      }
      this.downstream.next(out);
    } catch (err) {
      this.failed(err, from);
    }
  }

  /** An attempt failed (`from`: its subscriber; null when it could not even start). */
  failed(err: unknown, from: AttemptSubscriber | null): void {
    const { core, attempt } = this;
    let delay: number | null = null;
    try {
      if (!this.emitted && attempt < this.limit && core.retryOn(err)) {
        const ra = isGatewayError(err) && (err.status === 429 || err.status === 503) ? err.headers?.['retry-after'] : undefined;
        delay = core.decide({ req: this.req, attempt, error: err }, ra);
      }
    } catch (thrown) {
      this.downstream.error(thrown);
      return;
    }
    if (delay === null) this.downstream.error(err);
    else this.again(delay, from);
  }

  /** Tears the failed attempt down (aborting its upstream request), then waits `delay` before the next. */
  private again(delay: number, from: AttemptSubscriber | null): void {
    from?.unsubscribe();
    const wait = this.core.scheduler.schedule(nextAttempt, delay < 0 ? 0 : delay, this); // as rxjs timer() clamps
    this.downstream.add(wait);
  }
}

/** The wait is over: the next attempt. */
function nextAttempt(this: SchedulerAction<RetryRun>, run?: RetryRun): void {
  this.unsubscribe();
  run!.start();
}

/** Subscribes one attempt for its RetryRun; a child of the downstream subscriber, so unsubscribing stops it. */
class AttemptSubscriber extends Subscriber<GatewayResponse> {
  constructor(private readonly run: RetryRun) {
    super(run.downstream);
  }

  protected override _next(res: GatewayResponse): void {
    this.run.response(res, this);
  }

  protected override _error(err: unknown): void {
    try {
      this.run.failed(err, this);
    } finally {
      this.unsubscribe();
    }
  }

  protected override _complete(): void {
    try {
      this.run.downstream.complete();
    } finally {
      this.unsubscribe();
    }
  }
}
