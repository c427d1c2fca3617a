import { config, Subscription, UnsubscriptionError, type Observer, type Subscriber, type TeardownLogic, type Unsubscribable } from 'rxjs';
import { systemRuntime } from './runtime.ts';

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
 * The first thing added to it is held in a field, `first`, instead of
 * RxJS's finaliser array (an array and its backing store per subscriber,
 * and an iterator each time it is torn down): the next stage's
 * InnerSubscriber (the usual chain, linked both ways so either end can
 * unlink it), or a teardown that is not a Subscription (what `forward`'s
 * start returns). It is torn down first, as it would be first in the array;
 * anything added after it goes through `Subscription.add` as before.
 */
export abstract class InnerSubscriber<T, R = T> extends Subscription implements Observer<T> {
  // Fields declared, and assigned in the constructor: as class fields they
  // would be defined by one initialiser that every stage's subscriber runs,
  // and once more than four subclasses go through it V8 defines them on
  // its slow runtime path (~1 µs per field and object); assignments use
  // the megamorphic stub cache instead.
  /** True once error or complete arrived, or once unsubscribed. */
  protected declare isStopped: boolean;
  /** The first teardown added (see above), while nothing went to RxJS's array before it. */
  private declare first: InnerSubscriber<unknown, unknown> | Unsubscribable | (() => void) | null;
  /** The InnerSubscriber this one is the `first` of. */
  private declare parent: InnerSubscriber<unknown, unknown> | null;
  /** Something went to RxJS's finaliser array: what comes later is not first. */
  private declare spilled: boolean;
  protected declare readonly downstream: Subscriber<R>;

  constructor(downstream: Subscriber<R>) {
    super();
    this.isStopped = false;
    this.first = null;
    this.parent = null;
    this.spilled = false;
    (this as unknown as { downstream: Subscriber<R> }).downstream = downstream;
    if (downstream !== null) downstream.add(this);
  }

  override add(teardown: TeardownLogic): void {
    // Not while stopping: unsubscribe tears `first` down before it closes
    // this one, and a teardown taken as `first` then would never run.
    if (this.first === null && !this.spilled && !this.isStopped && teardown !== null && teardown !== undefined) {
      if (teardown instanceof InnerSubscriber) {
        if (!teardown.closed && teardown.parent === null && teardown !== this) {
          this.first = teardown;
          teardown.parent = this;
          return;
        }
      } else if (!(teardown instanceof Subscription)) {
        this.first = teardown;
        return;
      }
    }
    if (teardown instanceof InnerSubscriber && teardown.parent === this) return; // linked already
    if (!this.closed && teardown !== null && teardown !== undefined && teardown !== this) this.spilled = true;
    super.add(teardown);
  }

  override remove(teardown: Exclude<TeardownLogic, void>): void {
    if (teardown === this.first) {
      this.first = null;
      if (teardown instanceof InnerSubscriber) teardown.parent = null;
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
      parent.first = null;
      this.parent = null;
    }
    const first = this.first;
    if (first === null) {
      super.unsubscribe();
      return;
    }
    this.first = null;
    // `first` before the rest, as RxJS would tear down the first of its
    // finalisers; this one closes whatever that throws, and the throw comes
    // out as RxJS's UnsubscriptionError.
    let failure: unknown[] | null = null;
    try {
      if (first instanceof InnerSubscriber) {
        first.parent = null;
        first.unsubscribe();
      } else if (typeof first === 'function') first();
      else first.unsubscribe();
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
 * What RxJS does with an error nobody can receive: hand it to
 * `config.onUnhandledError`, or throw it on a later tick. (RxJS's own helper
 * is internal, so not imported.)
 */
export function reportUnhandledError(err: unknown): void {
  systemRuntime.scheduler.schedule(() => {
    const handler = config.onUnhandledError;
    if (handler !== null) handler(err);
    else throw err;
  });
}
