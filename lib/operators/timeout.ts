import { asyncScheduler, Observable, throwError, timeout as rxTimeout, type SchedulerLike } from 'rxjs';
import { parseDuration, type Duration } from '../duration.ts';
import { GatewayTimeoutError } from '../errors.ts';
import type { GatewayResponse, Handler, Policy } from '../types.ts';

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
  const withHead = headMs === null
    ? (source: Observable<GatewayResponse>) => source
    : rxTimeout<GatewayResponse, Observable<never>>({ first: headMs, with: () => throwError(headError), scheduler });

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
