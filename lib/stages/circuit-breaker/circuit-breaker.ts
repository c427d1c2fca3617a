import { Observable, type Subscriber, type TeardownLogic } from 'rxjs';
import { Breaker, type BreakerOptions, type BreakerPermit, type BreakerTransition, type PermitSlot } from './breaker.ts';
import { defaultIsFailure, type CallOutcome } from './outcome.ts';
import { BreakerRegistry } from './registry.ts';
import { BufferedBody } from '../../body.ts';
import { CircuitOpenError, isGatewayError } from '../../errors.ts';
import { InnerSubscriber, reportUnhandledError, stageHandler, subscribeNext } from '../../subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';

/** A fixed answer while the circuit is open, instead of the 503 error. */
export interface CircuitFallback {
  status: number;
  /** Header names in lower case. A `retry-after` is added unless given here. */
  headers?: Record<string, string>;
  body?: string;
}

/** How the operator uses its breakers (the part that is not the breaker's own bookkeeping). */
export interface CircuitBreakerCallOptions {
  /**
   * Which breaker a request goes through, e.g. `(req) => req.locals.route`
   * for one per route. Required with a `BreakerRegistry`; null: one breaker
   * for everything the operator wraps. Not for one per upstream instance:
   * this runs before `forward` picks the instance (`req.attempt.instance`
   * is still null); use forward's `breakers` option for that.
   * @default null
   */
  keyBy?: ((req: GatewayRequest) => string) | null;
  /** Whether an outcome counts as a failure. @default defaultIsFailure (the gateway's own retryable errors: 502, 503, 504; no response status) */
  isFailure?: (outcome: CallOutcome) => boolean;
  /** Answer with this while open instead of erroring with `CircuitOpenError`. @default null */
  fallback?: CircuitFallback | null;
}

export type CircuitBreakerOptions = BreakerOptions & CircuitBreakerCallOptions;

/** The operator, with the breakers it drives for metrics and logs. */
export interface CircuitBreakerPolicy extends Policy {
  /** Every transition of every breaker it uses. */
  readonly state$: Observable<BreakerTransition>;
  /** The breaker a request goes through. */
  breakerFor(req: GatewayRequest): Breaker;
}

const callDefaults = {
  keyBy: null,
  isFailure: defaultIsFailure,
  fallback: null,
} satisfies Required<CircuitBreakerCallOptions>;

function isBreakerSource(x: unknown): x is Breaker | BreakerRegistry {
  return x instanceof Breaker || x instanceof BreakerRegistry;
}

/**
 * Fails fast while an upstream is failing. Each call takes a permit from its
 * breaker; the verdict is given at the response head (its status), or on an
 * error before it; unsubscribing first (client abort) gives none. While open
 * it errors at once with `CircuitOpenError` (503, `retry-after`), or answers
 * with `fallback`.
 *
 * `circuitBreaker(options)` builds its own breaker (or registry, with
 * `keyBy`); `circuitBreaker(breaker)` or `circuitBreaker(registry, { keyBy })`
 * shares one built elsewhere.
 */
export function circuitBreaker(options?: CircuitBreakerOptions): CircuitBreakerPolicy;
export function circuitBreaker(source: Breaker | BreakerRegistry, options?: CircuitBreakerCallOptions): CircuitBreakerPolicy;
export function circuitBreaker(
  first: CircuitBreakerOptions | Breaker | BreakerRegistry = {},
  second: CircuitBreakerCallOptions = {},
): CircuitBreakerPolicy {
  const call = { ...callDefaults, ...(isBreakerSource(first) ? second : pickCall(first)) };
  const { keyBy, isFailure, fallback } = call;
  let source: Breaker | BreakerRegistry;
  if (isBreakerSource(first)) {
    source = first;
  } else {
    const { keyBy: _k, isFailure: _f, fallback: _b, ...breakerOptions } = first;
    source = keyBy === null ? new Breaker(breakerOptions) : new BreakerRegistry(breakerOptions);
  }
  if (source instanceof BreakerRegistry && keyBy === null) throw new TypeError('circuitBreaker: a BreakerRegistry needs keyBy');
  if (source instanceof Breaker && keyBy !== null) throw new TypeError('circuitBreaker: keyBy needs a BreakerRegistry, not one Breaker');
  if (fallback !== null && (!Number.isInteger(fallback.status) || fallback.status < 200 || fallback.status > 599)) {
    throw new TypeError(`circuitBreaker: fallback.status must be an HTTP status, got ${fallback.status}`);
  }
  const fallbackBody = fallback?.body === undefined ? null : BufferedBody.of(fallback.body);
  const breakerFor = source instanceof Breaker
    ? (() => source) as (req: GatewayRequest) => Breaker
    : (req: GatewayRequest) => source.get(keyBy!(req));

  function reject(breaker: Breaker): Observable<GatewayResponse> | CircuitOpenError {
    const retryAfter = String(Math.max(1, Math.ceil(breaker.retryAfter() / 1000)));
    if (fallback === null) return new CircuitOpenError('circuit breaker is open', { headers: { 'retry-after': retryAfter } });
    const headers: string[] = [];
    for (const [name, value] of Object.entries(fallback.headers ?? {})) headers.push(name.toLowerCase(), value);
    if (!headers.some((h, i) => i % 2 === 0 && h === 'retry-after')) headers.push('retry-after', retryAfter);
    return new Observable((s) => {
      // final: another attempt cannot help, and no breaker around this one counts it.
      s.next({ status: fallback.status, headers, body: fallbackBody?.replay() ?? null, final: true });
      s.complete();
    });
  }

  /** The permit, taken when a request's Observable is subscribed. */
  function admitCall(next: Handler, req: GatewayRequest, subscriber: Subscriber<GatewayResponse>): TeardownLogic {
    const breaker = breakerFor(req);
    // judged() inlined, the subscriber its own permit: one object per request.
    const judge = new JudgedSubscriber(subscriber, breaker, null, isFailure);
    // Unstamped: the subscriber's startedAt is read only to measure slow calls.
    const admitted = breaker.acquire(judge, false);
    // Only the access log and tracing read it: recorded when the request is
    // observed (`attempts` set, see requestObservers), as forward does.
    const l = req.locals;
    if (l.attempts !== undefined) l.breaker = !admitted ? 'reject' : judge.probe ? 'probe' : 'pass';
    if (!admitted) {
      judge.unsubscribe(); // holds no permit: releases nothing
      const r = reject(breaker);
      if (r instanceof CircuitOpenError) subscriber.error(r);
      else return r.subscribe(subscriber);
      return;
    }
    subscribeNext(next, req, judge);
    return;
  }

  // A StageCall: one object per request where an Observable and its closure
  // were three; none when the stage before starts this one directly.
  const policy = (next: Handler): Handler => stageHandler('circuitBreakerHandler', admitCall, next);
  const state$ = source.state$;
  return Object.assign(policy, { state$, breakerFor });
}

function pickCall(o: CircuitBreakerOptions): CircuitBreakerCallOptions {
  const out: CircuitBreakerCallOptions = {};
  if (o.keyBy !== undefined) out.keyBy = o.keyBy;
  if (o.isFailure !== undefined) out.isFailure = o.isFailure;
  if (o.fallback !== undefined) out.fallback = o.fallback;
  return out;
}

/**
 * Runs `call$` under a permit already taken from `breaker`, settling it at the
 * response head (or an error before it; unsubscribing first releases it).
 * The operator's inner half, exported for a stage that picks an upstream
 * instance itself and keeps a breaker per instance (see the README).
 */
export function judged(
  breaker: Breaker,
  permit: BreakerPermit,
  call$: Observable<GatewayResponse>,
  isFailure: (outcome: CallOutcome) => boolean = defaultIsFailure,
): Observable<GatewayResponse> {
  return new Observable<GatewayResponse>((subscriber) => {
    call$.subscribe(new JudgedSubscriber(subscriber, breaker, permit, isFailure));
  });
}

/**
 * Subscribes a call for `judged`: settles the permit at the response head, at
 * an error before it, or (releasing it) at completion or unsubscription.
 * An InnerSubscriber rather than an observer object and closures: one
 * allocation per request where those were half a dozen.
 */
class JudgedSubscriber extends InnerSubscriber<GatewayResponse> implements PermitSlot {
  // Its own permit's fields (Breaker.acquire fills them in), used when it
  // is given none. Settled until then: a teardown before that releases nothing.
  generation = 0;
  startedAt = 0;
  probe = false;
  settled = true;
  /** Set when the verdict threw on an error: unsubscribing then does not release. */
  private unsettledAtTeardown = false;
  /** The permit it settles: the one `judged()` was given, or itself. */
  private readonly permit: BreakerPermit;

  constructor(
    downstream: Subscriber<GatewayResponse>,
    private readonly breaker: Breaker,
    permit: BreakerPermit | null,
    private readonly isFailure: (outcome: CallOutcome) => boolean,
  ) {
    super(downstream);
    this.permit = permit ?? this;
  }

  protected onNext(res: GatewayResponse): void {
    let failed: boolean;
    try {
      // Another breaker's answer (a fallback) says nothing about this call's upstream.
      failed = res.final !== true && this.isFailure({ response: res });
    } catch (err) {
      // As judged() always did with a throwing verdict (its observer threw):
      // report it, pass nothing on, settle nothing yet.
      reportUnhandledError(err);
      return;
    }
    // The Breaker settles a permit once: a second head counts for nothing.
    if (res.final === true) this.breaker.release(this.permit);
    else if (failed) this.breaker.failure(this.permit);
    else this.breaker.success(this.permit);
    this.downstream.next(res);
  }

  protected override onError(err: unknown): void {
    // A client abort, another breaker's refusal, or an error the verdict does
    // not blame on the upstream counts for nothing.
    const noVerdict = isGatewayError(err) && (err.code === 'CLIENT_ABORTED' || err.code === 'CIRCUIT_OPEN');
    let failed: boolean;
    try {
      failed = !noVerdict && this.isFailure({ error: err });
    } catch (thrown) {
      // As judged() always did with a throwing verdict: report it, tear the
      // call down, and neither error downstream nor settle the permit until
      // the downstream goes away.
      reportUnhandledError(thrown);
      this.unsettledAtTeardown = true;
      this.downstream.add(() => this.release());
      this.unsubscribe();
      return;
    }
    if (failed) this.breaker.failure(this.permit);
    else this.breaker.release(this.permit);
    this.downstream.error(err);
  }

  protected override onComplete(): void {
    this.release();
    this.downstream.complete();
  }

  override unsubscribe(): void {
    // Settle before the call is torn down, as judged() always did.
    if (!this.closed && !this.unsettledAtTeardown) this.release();
    super.unsubscribe();
  }

  private release(): void {
    this.breaker.release(this.permit);
  }
}
