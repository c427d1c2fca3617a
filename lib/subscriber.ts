import { config, Observable, Subscription, type Observer, type Subscriber, type TeardownLogic, type Unsubscribable } from 'rxjs';
import { ObserverSubscriber } from './observer-subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler } from './types.ts';

export { InnerSubscriber, reportUnhandledError } from './inner-subscriber.ts';
export { HoldingSubscriber, ObserverSubscriber } from './observer-subscriber.ts';

/**
 * The Observable a hand-written stage returns for one request: `body(a, b,
 * subscriber)` runs when it is subscribed, as `new Observable((s) => …)`
 * would run its closure. One object per request, where `new Observable`
 * with a closure costs the Observable, the closure and its context, and
 * RxJS's `subscribe` one more closure (its error context) per call.
 *
 * Subscribed with a subscriber (what stages pass each other: RxJS's own or
 * an `InnerSubscriber`), `body` runs directly: no wrapper, a throw goes to
 * the subscriber as its error, and what `body` returns is torn down with
 * it, as RxJS does. Anything else (an observer object, callbacks, the
 * deprecated synchronous error handling) goes through RxJS's `subscribe`.
 */
export class StageCall<T, A, B> extends Observable<T> {
  constructor(
    private readonly body: (a: A, b: B, subscriber: Subscriber<T>) => TeardownLogic,
    private readonly a: A,
    private readonly b: B,
  ) {
    super();
  }

  override subscribe(observerOrNext?: Partial<Observer<T>> | ((value: T) => void) | null): Subscription {
    if (arguments.length === 1 && direct(observerOrNext)) return run(this.body, this.a, this.b, observerOrNext as unknown as Subscriber<T>);
    // eslint-disable-next-line prefer-rest-params
    return (super.subscribe as (...args: unknown[]) => Subscription).apply(this, arguments as unknown as unknown[]);
  }

  /** RxJS's hook, for the subscribers its own `subscribe` makes. */
  protected _subscribe(subscriber: Subscriber<T>): TeardownLogic {
    return this.body(this.a, this.b, subscriber);
  }
}

function isObserver(x: object): boolean {
  const o = x as Partial<Observer<unknown>>;
  return typeof o.next === 'function' && typeof o.error === 'function' && typeof o.complete === 'function';
}

/** A subscriber a stage's body may run on directly (not RxJS's deprecated synchronous error mode). */
function direct(x: unknown): boolean {
  return x instanceof Subscription && isObserver(x) && !config.useDeprecatedSynchronousErrorHandling;
}

/**
 * An observer RxJS's `subscribe` would wrap in a SafeSubscriber, with none
 * of its deprecated modes on (they change what the wrapper does). Whatever
 * looks like a Subscription (RxJS's `isSubscription`) goes through RxJS.
 */
function plain(x: unknown): boolean {
  if (typeof x !== 'object' || x === null || x instanceof Subscription) return false;
  if (typeof (x as Partial<Subscription>).remove === 'function') return false;
  return !config.useDeprecatedSynchronousErrorHandling && !config.useDeprecatedNextContext;
}

/** Runs `body` on `subscriber` as RxJS runs a subscribe function: a throw is its error, what it returns is torn down with it. */
function run<T, A, B>(body: (a: A, b: B, subscriber: Subscriber<T>) => TeardownLogic, a: A, b: B, subscriber: Subscriber<T>): Subscriber<T> {
  let teardown: TeardownLogic;
  try {
    teardown = body(a, b, subscriber);
  } catch (err) {
    subscriber.error(err);
    return subscriber;
  }
  if (teardown !== undefined && teardown !== null) subscriber.add(teardown);
  return subscriber;
}

/**
 * A handler that can also run without building its Observable (as
 * `forward`'s): `start(req, observer)` does what subscribing `observer` to
 * `handler(req)` does, and returns what stops it (null when over).
 */
export interface Startable {
  start(req: GatewayRequest, observer: Observer<GatewayResponse>): Unsubscribable | null;
}

/**
 * `next(req).subscribe(subscriber)`, through `next.start` when the next
 * handler has one (a stage built with `stageHandler`, or `forward`): no
 * Observable, no closure, and what stops it becomes a teardown of `subscriber`.
 * A handler (or its `start`) that throws instead of returning fails
 * `subscriber` with the throw, as if its Observable had (so retry can retry
 * it and a breaker judge it).
 */
export function subscribeNext(next: Handler, req: GatewayRequest, subscriber: Subscription & Observer<GatewayResponse>): void {
  const start = (next as Partial<Startable>).start;
  if (start === undefined) {
    let source: Observable<GatewayResponse>;
    try {
      source = next(req);
    } catch (err) {
      subscriber.error(err);
      return;
    }
    source.subscribe(subscriber);
    return;
  }
  let stop: ReturnType<Startable['start']>;
  try {
    stop = start(req, subscriber);
  } catch (err) {
    // A `start` that throws fails `subscriber` too: on a retry's later attempt
    // it runs in a scheduler action, where RxJS would rethrow it uncaught.
    subscriber.error(err);
    return;
  }
  if (stop !== null && stop !== subscriber) subscriber.add(stop as Exclude<TeardownLogic, void>);
}

/**
 * A stage's per-request handler around `next`: `body(next, req, subscriber)`
 * runs when the request's Observable (a StageCall) is subscribed, or at once
 * when the stage before starts it with a subscriber (`subscribeNext`): then
 * not even the StageCall is made. Started with a plain observer (the edge's,
 * `RouteTable.start`), it runs on an ObserverSubscriber around it rather than
 * on what RxJS's `subscribe` would make. Either way a throw in `body` is the
 * subscriber's error and what `body` returns is torn down with it.
 */
export function stageHandler(
  name: string,
  body: (next: Handler, req: GatewayRequest, subscriber: Subscriber<GatewayResponse>) => TeardownLogic,
  next: Handler,
): Handler {
  const handler = {
    [name](req: GatewayRequest): Observable<GatewayResponse> {
      return new StageCall(body, next, req);
    },
  }[name]! as Handler & Startable;
  handler.start = function startStage(req, observer) {
    if (direct(observer)) return run(body, next, req, observer as unknown as Subscriber<GatewayResponse>);
    if (plain(observer)) return run(body, next, req, new ObserverSubscriber(observer) as unknown as Subscriber<GatewayResponse>);
    return handler(req).subscribe(observer);
  };
  return handler;
}
