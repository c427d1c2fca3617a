import type { SchedulerAction, Subscriber, Subscription } from 'rxjs';
import type { BufferedBody } from '../../body.ts';
import { isGatewayError, isUnsentError, NoOtherInstance } from '../../errors.ts';
import { getHeader } from '../../headers.ts';
import { HoldingSubscriber, InnerSubscriber, subscribeNext } from '../../subscriber.ts';
import { headersWithRoom } from '../response-headers.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../types.ts';
import type { RetryDecider, RetryEvent } from './decide.ts';

/**
 * One request's attempts, one at a time, and the waits between them: what
 * `defer` + `map` + rxjs `retry({ delay })` did, written out, in the same
 * order of events. An attempt that fails before its response went downstream
 * is torn down (aborting its upstream request) and the next one starts after
 * the wait; unsubscribing stops the attempt under way or the wait.
 *
 * Which failures are retried:
 * - an error `retryOn` accepts, for an idempotent request whose body can be
 *   replayed (none, or buffered);
 * - the same error when the upstream never saw the request (`sent: false`),
 *   whatever the method, the body being unread: at once, on another instance;
 * - a response whose status is listed, for an idempotent replayable request,
 *   unless it is `final` (an open circuit's fallback).
 *
 * Attempt 1 is the request as it came (with its body buffered when retry had
 * to buffer it); attempt n > 1 is a shallow copy with its own `attempt`
 * context, listing the instances tried before.
 *
 * The run is itself the first attempt's subscriber (a child of the
 * downstream subscriber, so unsubscribing stops it): a request that needs
 * no retry costs this one object. Each later attempt gets an
 * AttemptSubscriber of its own.
 */
export class RetryRun extends InnerSubscriber<GatewayResponse> {
  private n = 0;
  /** Whether a response went downstream: nothing is retried after that. */
  private emitted = false;
  /** The request of the attempt under way. */
  private current: GatewayRequest;
  /** Whether a retry granted by the budget is in flight (see RetryBudget.minConcurrent). */
  private holding = false;
  /** The head timeout the next attempt must not repeat on an instance already tried (Attempt.elsewhereOr). */
  private timedOut: unknown = undefined;
  /**
   * The retry granted for the next attempt, told to `onRetry` only once that
   * attempt is sent: after a head timeout forward may find no other instance
   * (NoOtherInstance, at once as the attempt is subscribed), and a retry
   * that never leaves is neither counted nor charged to the budget's window.
   */
  private granted: { event: RetryEvent; at: number; subscribing: boolean } | null = null;

  constructor(
    private readonly decider: RetryDecider,
    private readonly handler: Handler,
    first: GatewayRequest,
    /** The bytes each further attempt replays; null when the body is none, or streamed. */
    private readonly replay: BufferedBody | null,
    /** Idempotent, and its body (if any) can be replayed: any retryable failure may be retried. */
    private readonly repeatable: boolean,
    downstream: Subscriber<GatewayResponse>,
  ) {
    super(downstream);
    this.current = first;
  }

  start(): void {
    const n = ++this.n;
    // A next handler that throws fails the attempt's subscriber (subscribeNext), so failed() sees it.
    if (n === 1) {
      subscribeNext(this.handler, this.current, this);
      return;
    }
    try {
      this.current = this.following(n);
    } catch (err) {
      this.failed(err, null);
      return;
    }
    if (this.granted !== null) this.granted.subscribing = true;
    subscribeNext(this.handler, this.current, new AttemptSubscriber(this, this.downstream));
    // Not failed with NoOtherInstance as it was subscribed: the attempt went to an instance.
    this.sent();
  }

  /** The retry whose attempt is being subscribed is counted (and told to onRetry): the attempt left. */
  private sent(): void {
    const granted = this.granted;
    if (granted === null || !granted.subscribing) return;
    this.granted = null;
    this.decider.announce(granted.event);
  }

  /** `decider.decide`, holding the retry's announcement back when the next attempt may find no instance. */
  private decide(event: RetryEvent, retryAfter: string | undefined, immediate: boolean, elsewhere: boolean): number | null {
    const delay = this.decider.decide(event, retryAfter, immediate, !elsewhere);
    if (delay !== null && elsewhere) this.granted = { event: { ...event, delay }, at: this.decider.settings.budget?.now() ?? 0, subscribing: false };
    return delay;
  }

  protected onNext(res: GatewayResponse): void {
    this.response(res, this);
  }

  protected override onError(err: unknown): void {
    this.failed(err, this);
  }

  /** Attempt `n`'s request, made from the previous one. */
  private following(n: number): GatewayRequest {
    const prev = this.current;
    const { tried, instance } = prev.attempt;
    return {
      ...prev,
      // A streamed body is passed on only after an unsent failure: it was never read.
      body: this.replay !== null ? this.replay.replay() : prev.body,
      attempt: this.timedOut === undefined
        ? { number: n, tried: instance === null ? tried : [...tried, instance], instance: null }
        : { number: n, tried: instance === null ? tried : [...tried, instance], instance: null, elsewhereOr: this.timedOut },
    };
  }

  /** An attempt's response head. */
  response(res: GatewayResponse, from: Subscription): void {
    const { decider, n } = this;
    const s = decider.settings;
    this.sent();
    try {
      this.release();
      if (this.repeatable && n < s.attempts && s.statuses.has(res.status) && res.final !== true) {
        const ra = res.status === 429 || res.status === 503 ? getHeader(res.headers, 'retry-after') : undefined;
        const delay = this.decide({ req: this.current, attempt: n, status: res.status }, ra, false, this.timedOut !== undefined);
        if (delay !== null) {
          res.body?.destroy();
          this.again(delay, from);
          return;
        }
      }
      this.emitted = true;
      let out = res;
      if (s.attemptsHeader !== null) {
        const len = res.headers.length;
        const headers = headersWithRoom(res.headers, 2);
        headers[len] = s.attemptsHeader;
        headers[len + 1] = String(n);
        out = { ...res, headers };
      }
      this.downstream.next(out);
    } catch (err) {
      this.failed(err, from);
    }
  }

  /** An attempt failed (`from`: its subscriber; null when it could not even start). */
  failed(err: unknown, from: Subscription | null): void {
    const { decider, n } = this;
    const s = decider.settings;
    let delay: number | null = null;
    try {
      this.release();
      // forward found no other instance than those that timed out: no further attempt.
      if (err instanceof NoOtherInstance) {
        const granted = this.granted;
        this.granted = null;
        if (granted?.subscribing === true) decider.refund(granted.at);
        this.downstream.error(err.error);
        return;
      }
      this.sent();
      if (!this.emitted && n < s.attempts && s.retryOn(err)) {
        const unsent = isUnsentError(err);
        if (unsent || this.repeatable) {
          // A Retry-After on an error the upstream never saw (a 503 with no instance, a WebSocket
          // route full) is for the client: the next attempt goes at once, to another instance.
          const ra = !unsent && isGatewayError(err) && (err.status === 429 || err.status === 503) ? err.headers?.['retry-after'] : undefined;
          delay = this.decide({ req: this.current, attempt: n, error: err }, ra, unsent, this.timedOut !== undefined || headTimedOut(err));
        }
      }
    } catch (thrown) {
      this.downstream.error(thrown);
      return;
    }
    if (delay === null) {
      this.downstream.error(err);
      return;
    }
    // Sticky: a later failure of another kind does not send the request back to an instance that timed out.
    if (headTimedOut(err)) this.timedOut = err;
    this.again(delay, from);
  }

  /** Tears the failed attempt down (aborting its upstream request), then waits `delay` before the next. */
  private again(delay: number, from: Subscription | null): void {
    from?.unsubscribe();
    // Once per request, at its first retry: give the budget slot back if the client goes away.
    if (this.n === 1) this.downstream.add(() => this.release());
    this.holding = true;
    const wait = this.decider.settings.scheduler.schedule(nextAttempt, delay < 0 ? 0 : delay, this); // as rxjs timer() clamps
    this.downstream.add(wait);
  }

  /** The granted retry's attempt is over (or the client went away): its budget slot is free again. */
  private release(): void {
    if (!this.holding) return;
    this.holding = false;
    this.decider.done();
  }
}

/**
 * The upstream got the request and sent no response head within its
 * service's `timeout` (undici's headers timeout, which the exchange's
 * deadline raises), or never accepted the connection within undici's connect
 * timeout (10 s): either would only be waited again on the same instance
 * (nginx tries each server once). A timeout stage's 504
 * (`timeouts.perAttempt`) is not this: a per-attempt limit asks for retries,
 * wherever they go.
 */
function headTimedOut(err: unknown): boolean {
  if (!isGatewayError(err) || err.code !== 'GATEWAY_TIMEOUT') return false;
  const code = (err.cause as { code?: unknown } | undefined)?.code;
  return err.sent ? code === 'UND_ERR_HEADERS_TIMEOUT' : code === 'UND_ERR_CONNECT_TIMEOUT';
}

/** The wait is over: the next attempt. */
function nextAttempt(this: SchedulerAction<RetryRun>, run?: RetryRun): void {
  this.unsubscribe();
  run!.start();
}

/** A later attempt's subscriber, a child of downstream (unsubscribing stops it); no InnerSubscriber (see HoldingSubscriber). */
class AttemptSubscriber extends HoldingSubscriber<GatewayResponse> {
  constructor(private readonly run: RetryRun, private readonly downstream: Subscriber<GatewayResponse>) {
    super(downstream);
  }

  protected onNext(res: GatewayResponse): void {
    this.run.response(res, this);
  }

  protected onError(err: unknown): void {
    this.run.failed(err, this);
  }

  protected onComplete(): void {
    this.downstream.complete();
  }
}
