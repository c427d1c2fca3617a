import { config, firstValueFrom, map, Observable, of, Subscriber, Subscription, UnsubscriptionError, type Observer, type TeardownLogic } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { InnerSubscriber, StageCall, stageHandler, subscribeNext, type Startable } from '../../lib/subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';

/**
 * StageCall is what the policy stages return per request instead of
 * `new Observable(closure)`: it must behave as that Observable does, for
 * RxJS subscribers, the stages' own InnerSubscribers and plain observers.
 */

/** Passes values on: the shape of a stage's own subscriber. */
class Pass<T> extends InnerSubscriber<T> {
  protected onNext(value: T): void {
    this.downstream.next(value);
  }
}

function echo(value: string, tail: string, s: Subscriber<string>): void {
  s.next(value + tail);
  s.complete();
}

describe('StageCall', () => {
  afterEach(() => {
    config.useDeprecatedSynchronousErrorHandling = false;
  });

  it('runs its body on each subscription, not before, with a plain observer, a function or an operator', async () => {
    let runs = 0;
    const call$ = new StageCall((a: string, b: string, s: Subscriber<string>) => {
      runs++;
      echo(a, b, s);
    }, 'x', '!');
    expect(runs).toBe(0);
    const seen: string[] = [];
    let completed = false;
    call$.subscribe({ next: (v) => seen.push(v), complete: () => { completed = true; } });
    call$.subscribe((v) => seen.push(v));
    expect(await firstValueFrom(call$.pipe(map((v) => v.toUpperCase())))).toBe('X!');
    expect(seen).toEqual(['x!', 'x!']);
    expect(completed).toBe(true);
    expect(runs).toBe(3);
  });

  it('hands a subscriber to the body as it is, and returns it', () => {
    const outer = new Subscriber<string>({ next: () => {} } as Partial<Observer<string>> as Observer<string>);
    let got: unknown = null;
    const call$ = new StageCall((_a: null, _b: null, s: Subscriber<string>) => {
      got = s;
    }, null, null);
    expect(call$.subscribe(outer)).toBe(outer);
    expect(got).toBe(outer);
    const seen: string[] = [];
    const inner = new Pass<string>(new Subscriber<string>({ next: (v: string) => seen.push(v), error: () => {}, complete: () => {} }));
    new StageCall(echo, 'y', '?').subscribe(inner);
    expect(seen).toEqual(['y?']);
    expect(inner.closed).toBe(true);
  });

  it('turns a throw in the body into the error, as new Observable does', () => {
    const boom = new Error('boom');
    const body = (): void => {
      throw boom;
    };
    const errors: unknown[] = [];
    new StageCall(body, null, null).subscribe({ error: (e) => errors.push(e) });
    new Observable(body).subscribe({ error: (e) => errors.push(e) });
    const sub = new Subscriber<unknown>({ next: () => {}, error: (e: unknown) => errors.push(e), complete: () => {} });
    new StageCall(body, null, null).subscribe(sub);
    expect(errors).toEqual([boom, boom, boom]);
    expect(sub.closed).toBe(true);
  });

  it('tears down what the body returns when the subscription ends, and at once when it already has', () => {
    let torn = 0;
    const call$ = new StageCall((_a: null, _b: null, _s: Subscriber<number>) => () => {
      torn++;
    }, null, null);
    const subscription = call$.subscribe({});
    expect(torn).toBe(0);
    subscription.unsubscribe();
    expect(torn).toBe(1);
    const done = call$.subscribe(new Subscriber<number>({ next: () => {}, error: () => {}, complete: () => {} }));
    done.unsubscribe();
    expect(torn).toBe(2);
    // A body that completes synchronously and returns a teardown: run at once.
    const sync$ = new StageCall((_a: null, _b: null, s: Subscriber<number>) => {
      s.complete();
      return new Subscription(() => torn++);
    }, null, null);
    sync$.subscribe(new Subscriber<number>({ next: () => {}, error: () => {}, complete: () => {} }));
    expect(torn).toBe(3);
  });

  it('goes through RxJS with its deprecated synchronous error handling on', () => {
    config.useDeprecatedSynchronousErrorHandling = true;
    const seen: string[] = [];
    new StageCall(echo, 'z', '.').subscribe(new Subscriber<string>({ next: (v: string) => seen.push(v), error: () => {}, complete: () => {} }));
    expect(seen).toEqual(['z.']);
    // What only RxJS's own path does in that mode: a throw in the body, with
    // no error handler downstream, is rethrown from subscribe. (The direct
    // path would hand it to the subscriber, and this mode would drop it.)
    let downstream: Subscriber<unknown> | null = null;
    new Observable<unknown>((s) => { downstream = s; }).subscribe({ next: () => {} });
    const boom = (): TeardownLogic => { throw new Error('boom'); };
    expect(() => new StageCall(boom, null, null).subscribe(downstream!)).toThrow('boom');
  });
});

describe('InnerSubscriber links', () => {
  const sink = (): Subscriber<number> => new Subscriber<number>({ next: () => {}, error: () => {}, complete: () => {} });
  /** Records its teardown in `log`. */
  class Logged extends Pass<number> {
    constructor(downstream: Subscriber<number>, private readonly name: string, private readonly log: string[]) {
      super(downstream);
    }
    override unsubscribe(): void {
      if (!this.closed) this.log.push(this.name);
      super.unsubscribe();
    }
  }

  it('tears a chain down from the outside in when the outermost subscriber goes, children before later finalisers', () => {
    const log: string[] = [];
    const outer = sink();
    const a = new Logged(outer, 'a', log);
    const b = new Logged(a as unknown as Subscriber<number>, 'b', log);
    a.add(() => log.push('a: added after b'));
    const c = new Logged(b as unknown as Subscriber<number>, 'c', log);
    outer.unsubscribe();
    expect(log).toEqual(['a', 'b', 'c', 'a: added after b']);
    expect([a.closed, b.closed, c.closed]).toEqual([true, true, true]);
  });

  it('unlinks a child that ends on its own, so the parent can take another', () => {
    const log: string[] = [];
    const outer = sink();
    const a = new Logged(outer, 'a', log);
    const first = new Logged(a as unknown as Subscriber<number>, 'first', log);
    first.unsubscribe();
    const second = new Logged(a as unknown as Subscriber<number>, 'second', log);
    a.remove(second);
    a.add(second);
    a.add(second); // once only
    outer.unsubscribe();
    expect(log).toEqual(['first', 'a', 'second']);
  });

  it('passes events down a linked chain and closes it on completion', () => {
    const seen: number[] = [];
    let completed = false;
    const outer = new Subscriber<number>({ next: (v: number) => seen.push(v), error: () => {}, complete: () => { completed = true; } });
    const a = new Pass<number>(outer);
    const b = new Pass<number>(a as unknown as Subscriber<number>);
    b.next(1);
    b.complete();
    b.next(2);
    expect(seen).toEqual([1]);
    expect(completed).toBe(true);
    expect([outer.closed, a.closed, b.closed]).toEqual([true, true, true]);
  });

  it('closes the parent and reports an UnsubscriptionError when a linked child throws in its teardown', () => {
    const outer = sink();
    const a = new Pass<number>(outer);
    const b = new Pass<number>(a as unknown as Subscriber<number>);
    const boom = new Error('teardown');
    b.add(() => {
      throw boom;
    });
    let thrown: unknown = null;
    try {
      a.unsubscribe();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UnsubscriptionError);
    expect((thrown as UnsubscriptionError).errors).toEqual([boom]);
    expect([a.closed, b.closed]).toEqual([true, true]);
  });
});

describe('stageHandler and subscribeNext', () => {
  const req = { id: 'r1' } as GatewayRequest;
  const ok: GatewayResponse = { status: 200, headers: [], body: null };
  const answer: Handler = () => of(ok);
  const answers = (seen: string[]) => new Subscriber<GatewayResponse>({ next: (r: GatewayResponse) => seen.push(`next ${r.status}`), error: (e: unknown) => seen.push(`error ${String(e)}`), complete: () => seen.push('complete') });

  it('is a handler whose Observable runs the body per subscription, and starts it directly given a subscriber', () => {
    const calls: string[] = [];
    const handler = stageHandler('tagged', (next, r, s) => {
      calls.push(r.id);
      subscribeNext(next, r, s);
    }, answer);
    expect(handler.name).toBe('tagged');
    const seen: string[] = [];
    handler(req).subscribe({ next: (r) => seen.push(`next ${r.status}`), complete: () => seen.push('complete') });
    const direct = answers(seen);
    expect((handler as Handler & Startable).start(req, direct)).toBe(direct);
    expect(calls).toEqual(['r1', 'r1']);
    expect(seen).toEqual(['next 200', 'complete', 'next 200', 'complete']);
  });

  it('started with a plain observer, subscribes it as RxJS would', () => {
    const seen: string[] = [];
    const handler = stageHandler('plain', (next, r, s) => subscribeNext(next, r, s), answer) as Handler & Startable;
    const stop = handler.start(req, { next: (r) => seen.push(`next ${r.status}`), error: () => {}, complete: () => seen.push('complete') });
    expect(stop).toBeInstanceOf(Subscription);
    expect(seen).toEqual(['next 200', 'complete']);
  });

  it('turns a throw in the body into the error when started directly', () => {
    const seen: string[] = [];
    const handler = stageHandler('throws', () => {
      throw new Error('no');
    }, answer) as Handler & Startable;
    handler.start(req, answers(seen));
    expect(seen).toEqual(['error Error: no']);
  });

  it('starts a next handler that can start, and stops what it returns with the subscriber', () => {
    let stopped = 0;
    const pending = { unsubscribe: () => { stopped++; } };
    const next = Object.assign((() => of(ok)) as Handler, { start: () => pending });
    const seen: string[] = [];
    const subscriber = answers(seen);
    subscribeNext(next, req, subscriber);
    expect(seen).toEqual([]);
    subscriber.unsubscribe();
    expect(stopped).toBe(1);
  });

  it('chains stages started directly, with no Observable between them, in order', () => {
    const order: string[] = [];
    const stage = (name: string) => (next: Handler) => stageHandler(name, (n, r, s) => {
      order.push(name);
      subscribeNext(n, r, s);
    }, next);
    const handler = stage('a')(stage('b')(stage('c')(answer)));
    const seen: string[] = [];
    handler(req).subscribe(answers(seen));
    expect(order).toEqual(['a', 'b', 'c']);
    expect(seen).toEqual(['next 200', 'complete']);
  });
});
