import { config, Observable, Subscription, UnsubscriptionError, type Observer, type Subscriber, type TeardownLogic, type Unsubscribable } from 'rxjs';
import type { GatewayRequest, GatewayResponse, Handler } from './types.ts';

/**
 * The inner subscriber of a hand-written stage. RxJS's `Subscriber`
 * constructor is deprecated (internal in RxJS 8), so this extends the public
 * `Subscription` and implements `Observer`: RxJS takes such an object as a
 * subscriber as it is, without a SafeSubscriber wrapper, so a stage costs one
 * object per request (in the spirit of RxJS's internal `operate`).
 *
 * It is a child of `downstream` (unsubscribing downstream tears it down),
 * delivers nothing after an error or completion, and unsubscribes itself
 * after either. Subclasses implement `onNext`, and `onError`/`onComplete`
 * when they do more than pass the event on.
 *
 * Between two InnerSubscribers (one stage's subscriber the downstream of the
 * next one's, the usual chain) the link is two fields, `child` and
 * `parent`, instead of RxJS's finaliser array on the downstream (an array
 * and its backing store per link, and an iterator each time it is torn
 * down). Only a first child is linked so: torn down first, as it would be
 * first in the array; anything added after it, or to a downstream of RxJS's
 * own, goes through `Subscription.add` as before.
 */
export abstract class InnerSubscriber<T, R = T> extends Subscription implements Observer<T> {
  /** True once error or complete arrived, or once unsubscribed. */
  protected isStopped = false;
  /** The InnerSubscriber linked as this one's first child (see above). */
  private child: InnerSubscriber<unknown, unknown> | null = null;
  /** The InnerSubscriber this one is the linked child of. */
  private parent: InnerSubscriber<unknown, unknown> | null = null;

  constructor(protected readonly downstream: Subscriber<R>) {
    super();
    downstream.add(this);
  }

  override add(teardown: TeardownLogic): void {
    // Not while stopping: unsubscribe tears the child down before it closes
    // this one, and a child linked during that would never be torn down.
    if (teardown instanceof InnerSubscriber && this.child === null && !this.isStopped && !teardown.closed && teardown.parent === null
      && (this as unknown as { _finalizers: unknown[] | null })._finalizers === null) {
      this.child = teardown;
      teardown.parent = this;
      return;
    }
    if (teardown instanceof InnerSubscriber && teardown.parent === this) return; // linked already
    super.add(teardown);
  }

  override remove(teardown: Exclude<TeardownLogic, void>): void {
    if (teardown === this.child) {
      this.child = null;
      (teardown as InnerSubscriber<unknown, unknown>).parent = null;
      return;
    }
    super.remove(teardown);
  }

  next(value: T): void {
    if (!this.isStopped) this.onNext(value);
  }

  error(err: unknown): void {
    if (this.isStopped) return;
    this.isStopped = true;
    try {
      this.onError(err);
    } finally {
      this.unsubscribe();
    }
  }

  complete(): void {
    if (this.isStopped) return;
    this.isStopped = true;
    try {
      this.onComplete();
    } finally {
      this.unsubscribe();
    }
  }

  override unsubscribe(): void {
    if (this.closed) return;
    this.isStopped = true;
    const parent = this.parent;
    if (parent !== null) {
      parent.child = null;
      this.parent = null;
    }
    const child = this.child;
    if (child === null) {
      super.unsubscribe();
      return;
    }
    this.child = null;
    child.parent = null;
    // The child first, as RxJS would tear down the first of its finalisers;
    // this one closes whatever the child's teardown throws, and the throw
    // comes out as RxJS's UnsubscriptionError.
    let failure: unknown[] | null = null;
    try {
      child.unsubscribe();
    } catch (err) {
      failure = err instanceof UnsubscriptionError ? err.errors : [err];
    }
    try {
      super.unsubscribe();
    } catch (err) {
      failure = [...(failure ?? []), ...(err instanceof UnsubscriptionError ? err.errors : [err])];
    }
    if (failure !== null) throw new UnsubscriptionError(failure);
  }

  protected abstract onNext(value: T): void;

  protected onError(err: unknown): void {
    this.downstream.error(err);
  }

  protected onComplete(): void {
    this.downstream.complete();
  }
}

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
 */
export function subscribeNext(next: Handler, req: GatewayRequest, subscriber: Subscription & Observer<GatewayResponse>): void {
  const start = (next as Partial<Startable>).start;
  if (start === undefined) {
    next(req).subscribe(subscriber);
    return;
  }
  const stop = start(req, subscriber);
  if (stop !== null && stop !== subscriber) subscriber.add(stop as Exclude<TeardownLogic, void>);
}

/**
 * A stage's per-request handler around `next`: `body(next, req, subscriber)`
 * runs when the request's Observable (a StageCall) is subscribed, or at once
 * when the stage before starts it with a subscriber (`subscribeNext`): then
 * not even the StageCall is made. Either way a throw in `body` is the
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
    return direct(observer) ? run(body, next, req, observer as unknown as Subscriber<GatewayResponse>) : handler(req).subscribe(observer);
  };
  return handler;
}
