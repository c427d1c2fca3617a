import { asyncScheduler, Observable, Subscriber, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';
import { parseDuration, type Duration } from '../../duration.ts';
import { GatewayTimeoutError } from '../../errors.ts';
import type { GatewayResponse, Handler, Policy } from '../../types.ts';

export interface TimeoutOptions {
  /** Longest wait for the response head; null: none. @default '30s' */
  head?: Duration | null;
  /** Longest time for the whole exchange, until the body has ended; null: none. @default null */
  exchange?: Duration | null;
  /** Where the timers run. @default asyncScheduler */
  scheduler?: SchedulerLike;
}

const defaults = {
  head: '30s',
  exchange: null,
  scheduler: asyncScheduler,
} satisfies Required<TimeoutOptions>;

/**
 * Gives up on the inner exchange after `head` without a response head, or
 * after `exchange` in all: unsubscribes it (which aborts the upstream
 * request) and errors with `GatewayTimeoutError` (504). Placed outside
 * `retry` it bounds all attempts together; inside, each attempt.
 */
export function timeout(options: TimeoutOptions = {}): Policy {
  const o = { ...defaults, ...options };
  const headMs = o.head === null ? null : parseDuration(o.head, 'timeout.head');
  const exchangeMs = o.exchange === null ? null : parseDuration(o.exchange, 'timeout.exchange');
  const { scheduler } = o;
  if (headMs === null && exchangeMs === null) return (next) => next;

  const headError = () => new GatewayTimeoutError(`no response from upstream within ${headMs}ms`);

  /**
   * What rxjs `timeout({ first: headMs })` did, written out: it cost a lifted
   * Observable, an operator subscriber and several closures per request.
   * Same order of events: subscribe the source, start the timer unless the
   * head came synchronously, stop it at the head; on expiry unsubscribe the
   * source, then error.
   */
  function withHead(source: Observable<GatewayResponse>): Observable<GatewayResponse> {
    if (headMs === null) return source;
    return new Observable<GatewayResponse>((subscriber) => {
      const watch = new HeadWatch(subscriber, headError);
      source.subscribe(watch);
      // A source that ended synchronously needs no timer (rxjs would start one and cancel it at once).
      if (!watch.seen && !subscriber.closed) {
        watch.timer = scheduler.schedule(expire, headMs, watch);
        subscriber.add(watch.timer);
      }
    });
  }

  function withExchange(source: Observable<GatewayResponse>): Observable<GatewayResponse> {
    if (exchangeMs === null) return source;
    return new Observable<GatewayResponse>((subscriber) => {
      // An observer of our own, not `subscriber` itself: RxJS would adopt it,
      // and unsubscribing the inner would then silence the error below.
      const inner = source.subscribe({
        next: (res) => subscriber.next(res),
        error: (err: unknown) => subscriber.error(err),
        complete: () => subscriber.complete(),
      });
      const timer = scheduler.schedule(() => {
        inner.unsubscribe();
        subscriber.error(new GatewayTimeoutError(`upstream exchange took longer than ${exchangeMs}ms`));
      }, exchangeMs);
      return () => {
        timer.unsubscribe();
        inner.unsubscribe();
      };
    });
  }

  return (next) => function timeoutHandler(req) {
    return withExchange(withHead(next(req)));
  };
}

/** Subscribes an exchange for `timeout`'s head limit: notes the head, stops the timer. */
class HeadWatch extends Subscriber<GatewayResponse> {
  /** The head timer, once started. */
  timer: Subscription | null = null;
  /** Whether the response head came. */
  seen = false;

  constructor(readonly downstream: Subscriber<GatewayResponse>, readonly timeoutError: () => GatewayTimeoutError) {
    super(downstream);
  }

  protected override _next(res: GatewayResponse): void {
    this.timer?.unsubscribe();
    this.seen = true;
    // As an rxjs operator would: a throw downstream becomes its error.
    try {
      this.downstream.next(res);
    } catch (err) {
      this.downstream.error(err);
    }
  }

  override unsubscribe(): void {
    if (this.closed) return;
    super.unsubscribe();
    this.timer?.unsubscribe();
  }
}

/** The head timer fired: stop the exchange (aborting the upstream request), then fail with 504. */
function expire(this: SchedulerAction<HeadWatch>, watch?: HeadWatch): void {
  const w = watch!;
  try {
    w.unsubscribe();
    w.downstream.error(w.timeoutError());
  } catch (err) {
    w.downstream.error(err);
  }
  this.unsubscribe();
}
