import type { Observer, SchedulerLike, Subscriber, Subscription } from 'rxjs';
import { parseDuration, type Duration } from '../../duration.ts';
import { GatewayTimeoutError } from '../../errors.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import { InnerSubscriber, stageHandler, subscribeNext } from '../../subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';
import { Deadlines, type Deadline } from './deadlines.ts';

export interface TimeoutOptions {
  /** Longest wait for the response head; null: none. @default '30s' */
  head?: Duration | null;
  /** Longest time for the whole exchange, until the body has ended; null: none. @default null */
  exchange?: Duration | null;
  /** Where the timers run, and the clocks (`virtualRuntime(testScheduler)` in tests). @default systemRuntime */
  runtime?: Runtime;
  /** Where the timers run; overrides `runtime.scheduler`. @default runtime.scheduler */
  scheduler?: SchedulerLike;
}

const defaults = {
  head: '30s',
  exchange: null,
  runtime: systemRuntime,
} satisfies Required<Omit<TimeoutOptions, 'scheduler'>>;

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
  const scheduler = o.scheduler ?? o.runtime.scheduler;
  if (headMs === null && exchangeMs === null) return (next) => next;
  // Deadlines on the clock of the scheduler they run on: its own when given one, else the runtime's.
  const runtime = o.runtime;
  const now = o.scheduler !== undefined ? () => scheduler.now() : () => runtime.now();
  // One list and one timer per limit of this stage, shared by its requests.
  const headDeadlines = headMs === null ? null : new Deadlines(scheduler, now, headMs);
  const exchangeDeadlines = exchangeMs === null ? null : new Deadlines(scheduler, now, exchangeMs);

  const headError = () => new GatewayTimeoutError(`no response from upstream within ${headMs}ms`);
  const exchangeError = () => new GatewayTimeoutError(`upstream exchange took longer than ${exchangeMs}ms`);

  /**
   * What rxjs `timeout({ first: headMs })` did, written out: it cost a lifted
   * Observable, an operator subscriber and several closures per request.
   * Same order of events: subscribe the source, start the timer unless the
   * head came synchronously, stop it at the head; on expiry unsubscribe the
   * source, then error.
   */
  function watchHead(next: Handler, req: GatewayRequest, subscriber: Subscription & Observer<GatewayResponse>): void {
    const watch = new Watch(subscriber as Subscriber<GatewayResponse>, headError, true);
    subscribeNext(next, req, watch);
    // A source that ended synchronously needs no timer (rxjs would start one and cancel it at once).
    if (!watch.seen && !subscriber.closed) watch.start(headDeadlines!);
  }

  /** The request's watches, started when it is subscribed (or started directly: see stageHandler). */
  function watched(next: Handler, req: GatewayRequest, subscriber: Subscriber<GatewayResponse>): void {
    if (exchangeDeadlines === null) {
      watchHead(next, req, subscriber);
      return;
    }
    // A watch of our own, not `subscriber` itself: RxJS would adopt it, and
    // unsubscribing the inner would then silence the 504.
    const watch = new Watch(subscriber, exchangeError, false);
    if (headDeadlines === null) subscribeNext(next, req, watch);
    else watchHead(next, req, watch);
    if (!subscriber.closed) watch.start(exchangeDeadlines);
  }

  return (next) => stageHandler('timeoutHandler', watched, next);
}

/**
 * Subscribes an exchange for `timeout`: one object per request and limit,
 * its entry on the stage's deadline list (no timer of its own). A head watch
 * leaves the list at the response head; an exchange watch only when the
 * exchange ends.
 */
class Watch extends InnerSubscriber<GatewayResponse> implements Deadline {
  /** The list it is on, once started and until it leaves. */
  private list: Deadlines | null = null;
  deadline = 0;
  prevDeadline: Deadline | null = null;
  nextDeadline: Deadline | null = null;
  /** Whether the response head came. */
  seen = false;

  constructor(
    downstream: Subscriber<GatewayResponse>,
    private readonly timeoutError: () => GatewayTimeoutError,
    private readonly headOnly: boolean,
  ) {
    super(downstream);
  }

  /** Joins the list; unsubscribing downstream takes it off again (this watch is downstream's child). */
  start(list: Deadlines): void {
    this.list = list;
    list.add(this);
  }

  private leave(): void {
    const list = this.list;
    if (list === null) return;
    this.list = null;
    list.remove(this);
  }

  protected onNext(res: GatewayResponse): void {
    this.seen = true;
    if (this.headOnly) this.leave();
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
    this.leave();
  }

  /** The deadline passed (the list already let go of it): stop the exchange (aborting the upstream request), then fail with 504. */
  expire(): void {
    this.list = null;
    try {
      this.unsubscribe();
      this.downstream.error(this.timeoutError());
    } catch (err) {
      this.downstream.error(err);
    }
  }
}
