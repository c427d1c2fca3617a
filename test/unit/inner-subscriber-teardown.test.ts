import { Subscriber } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { InnerSubscriber } from '../../lib/subscriber.ts';

/** Passes values on: the shape of a stage's own subscriber. */
class Pass<T> extends InnerSubscriber<T> {
  protected onNext(value: T): void {
    this.downstream.next(value);
  }
}

/** A stage subscriber as the downstream of the next one's, as stages chain them. */
const asDownstream = (s: InnerSubscriber<number>): Subscriber<number> => s as unknown as Subscriber<number>;

function root(): Subscriber<number> {
  return new Subscriber<number>({ next() {}, error() {}, complete() {} } as never);
}

// InnerSubscriber links a first child by two fields and tears it down before
// closing itself; RxJS closes a subscription first. Whatever is added to it
// while it is being torn down must still be torn down with it.
describe('InnerSubscriber torn down while something is added to it', () => {
  it('tears down a stage subscriber added to it by its child\'s teardown', () => {
    const parent = new Pass<number>(root());
    const child = new Pass<number>(asDownstream(parent));
    let late: Pass<number> | null = null;
    child.add(() => {
      late = new Pass<number>(asDownstream(parent));
    });
    parent.unsubscribe();
    expect(parent.closed).toBe(true);
    expect(late!.closed).toBe(true);
  });

  it('tears down a stage subscriber added to it while it errors', () => {
    let late: Pass<number> | null = null;
    class Erring extends Pass<number> {
      protected override onError(err: unknown): void {
        late = new Pass<number>(asDownstream(this));
        super.onError(err);
      }
    }
    const s = new Erring(root());
    s.error(new Error('boom'));
    expect(s.closed).toBe(true);
    expect(late!.closed).toBe(true);
  });
});
