import { Subscription, type Observer, type Subscriber } from 'rxjs';

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
