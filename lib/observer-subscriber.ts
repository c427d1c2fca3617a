import { Subscription, UnsubscriptionError, type Observer, type TeardownLogic, type Unsubscribable } from 'rxjs';
import { InnerSubscriber, reportUnhandledError } from './inner-subscriber.ts';

/**
 * What a stage started with a plain observer (the edge's) runs on: what
 * RxJS's `subscribe` makes of one (a SafeSubscriber around a
 * ConsumerObserver, a closure for its error context, and a finaliser array
 * for the stage's subscriber) in one object. Same behaviour: events go to
 * the observer's handlers that exist, one that throws is reported as RxJS
 * reports it (`config.onUnhandledError`, else thrown on a later tick), an
 * error without a handler too, and nothing arrives after an error,
 * completion or unsubscription.
 *
 * Not an InnerSubscriber, though it holds the first thing added to it (the
 * outermost stage's subscriber) in a field as one does: every route with a
 * stage runs one of these, and as a fifth class through InnerSubscriber's
 * methods it made their field reads and writes megamorphic on the policies
 * route (Watch, HeadersSubscriber, RetryRun, JudgedSubscriber and this):
 * ~1.1 µs per request in one process (docs/performance-policies.md, tenth
 * round). The stage's subscriber is not linked back to it: when that one
 * ends on its own it stays in `inner` until this one is torn down, where
 * its `unsubscribe` returns at once.
 */
export class ObserverSubscriber<T> extends Subscription implements Observer<T> {
  // Declared and assigned in the constructor, as InnerSubscriber's (see there).
  private declare observer: Partial<Observer<T>> | null;
  private declare isStopped: boolean;
  /** The first teardown added, while nothing went to RxJS's array before it. */
  private declare inner: Unsubscribable | (() => void) | null;
  /** Something went to RxJS's finaliser array: what comes later is not first. */
  private declare spilled: boolean;

  constructor(observer: Partial<Observer<T>>) {
    super();
    this.observer = observer;
    this.isStopped = false;
    this.inner = null;
    this.spilled = false;
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
    if (this.isStopped) return;
    const o = this.observer!;
    if (typeof o.next !== 'function') return;
    try {
      o.next(value);
    } catch (err) {
      reportUnhandledError(err);
    }
  }

  error(err: unknown): void {
    if (this.isStopped) return;
    this.isStopped = true;
    const o = this.observer!;
    try {
      if (typeof o.error !== 'function') reportUnhandledError(err);
      else o.error(err);
    } catch (thrown) {
      reportUnhandledError(thrown);
    } finally {
      this.unsubscribe();
    }
  }

  complete(): void {
    if (this.isStopped) return;
    this.isStopped = true;
    const o = this.observer!;
    try {
      if (typeof o.complete === 'function') o.complete();
    } catch (err) {
      reportUnhandledError(err);
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
    } finally {
      this.observer = null;
    }
    if (failure !== null) throw new UnsubscriptionError(failure);
  }
}
