import { Subscription, UnsubscriptionError, type Observer, type TeardownLogic, type Unsubscribable } from 'rxjs';
import { InnerSubscriber, reportUnhandledError } from './inner-subscriber.ts';

/**
 * A subscriber that is no InnerSubscriber but holds the first thing added
 * to it (the next stage's subscriber) in a field as one does, rather than in
 * RxJS's finaliser array. For the subscribers a route may make that are not
 * a stage's own (the edge's ObserverSubscriber, retry's later attempts):
 * as a fifth class through InnerSubscriber's methods either made their
 * field reads and writes megamorphic, for every stage of every route in the
 * process (~1 µs per request on the policies route in one process; after a
 * retry, back to where it was: docs/performance-policies.md, tenth round).
 * The held subscriber is not linked back: when it ends first it stays in
 * `inner` until this one is torn down, where its `unsubscribe` returns at
 * once. Delivers nothing after an error or completion, and unsubscribes
 * itself after either.
 */
export abstract class HoldingSubscriber<T> extends Subscription implements Observer<T> {
  // Declared and assigned in the constructor, as InnerSubscriber's (see there).
  protected declare isStopped: boolean;
  /** The first teardown added, while nothing went to RxJS's array before it. */
  private declare inner: Unsubscribable | (() => void) | null;
  /** Something went to RxJS's finaliser array: what comes later is not first. */
  private declare spilled: boolean;

  /** @param downstream the subscription this one is a child of (unsubscribing it stops this one); null for none */
  constructor(downstream: Subscription | null) {
    super();
    this.isStopped = false;
    this.inner = null;
    this.spilled = false;
    if (downstream !== null) downstream.add(this);
  }

  override add(teardown: TeardownLogic): void {
    if (this.inner === null && !this.spilled && !this.isStopped && teardown !== null && teardown !== undefined && teardown !== this) {
      if (teardown instanceof InnerSubscriber ? !teardown.closed : !(teardown instanceof Subscription)) {
        this.inner = teardown as Unsubscribable | (() => void);
        return;
      }
    }
    if (!this.closed && teardown !== null && teardown !== undefined && teardown !== this) this.spilled = true;
    super.add(teardown);
  }

  override remove(teardown: Exclude<TeardownLogic, void>): void {
    if (teardown === this.inner) {
      this.inner = null;
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
    const inner = this.inner;
    this.inner = null;
    // `inner` before the rest, as RxJS would tear down the first of its
    // finalisers; a throw comes out as RxJS's UnsubscriptionError.
    let failure: unknown[] | null = null;
    if (inner !== null) {
      try {
        if (typeof inner === 'function') inner();
        else inner.unsubscribe();
      } catch (err) {
        failure = err instanceof UnsubscriptionError ? err.errors : [err];
      }
    }
    try {
      super.unsubscribe();
    } catch (err) {
      failure = [...(failure ?? []), ...(err instanceof UnsubscriptionError ? err.errors : [err])];
    }
    if (failure !== null) throw new UnsubscriptionError(failure);
  }

  protected abstract onNext(value: T): void;
  protected abstract onError(err: unknown): void;
  protected abstract onComplete(): void;
}

/**
 * What a stage started with a plain observer (the edge's) runs on: what
 * RxJS's `subscribe` makes of one (a SafeSubscriber around a
 * ConsumerObserver, a closure for its error context, and a finaliser array
 * for the stage's subscriber) in one object. Same behaviour: events go to
 * the observer's handlers that exist, one that throws is reported as RxJS
 * reports it (`config.onUnhandledError`, else thrown on a later tick), an
 * error without a handler too, and nothing arrives after an error,
 * completion or unsubscription.
 */
export class ObserverSubscriber<T> extends HoldingSubscriber<T> {
  private declare observer: Partial<Observer<T>> | null;

  constructor(observer: Partial<Observer<T>>) {
    super(null);
    this.observer = observer;
  }

  protected onNext(value: T): void {
    const o = this.observer!;
    if (typeof o.next !== 'function') return;
    try {
      o.next(value);
    } catch (err) {
      reportUnhandledError(err);
    }
  }

  protected onError(err: unknown): void {
    const o = this.observer!;
    try {
      if (typeof o.error !== 'function') reportUnhandledError(err);
      else o.error(err);
    } catch (thrown) {
      reportUnhandledError(thrown);
    }
  }

  protected onComplete(): void {
    const o = this.observer!;
    try {
      if (typeof o.complete === 'function') o.complete();
    } catch (err) {
      reportUnhandledError(err);
    }
  }

  override unsubscribe(): void {
    if (this.closed) return;
    try {
      super.unsubscribe();
    } finally {
      this.observer = null;
    }
  }
}
