import { config, Observable, Subscription, type Observer, type Subscriber, type TeardownLogic } from 'rxjs';

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
 */
export abstract class InnerSubscriber<T, R = T> extends Subscription implements Observer<T> {
  /** True once error or complete arrived, or once unsubscribed. */
  protected isStopped = false;

  constructor(protected readonly downstream: Subscriber<R>) {
    super();
    downstream.add(this);
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
    super.unsubscribe();
    this.downstream.remove(this);
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
    if (arguments.length === 1 && observerOrNext instanceof Subscription && isObserver(observerOrNext) && !config.useDeprecatedSynchronousErrorHandling) {
      const subscriber = observerOrNext as unknown as Subscriber<T>;
      let teardown: TeardownLogic;
      try {
        teardown = this.body(this.a, this.b, subscriber);
      } catch (err) {
        subscriber.error(err);
        return subscriber;
      }
      if (teardown !== undefined && teardown !== null) subscriber.add(teardown);
      return subscriber;
    }
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
