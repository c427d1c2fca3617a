import { config, of, Subscriber, Subscription, UnsubscriptionError, type Observer } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { Breaker } from '../../lib/stages/circuit-breaker/breaker.ts';
import { circuitBreaker } from '../../lib/stages/circuit-breaker/circuit-breaker.ts';
import { headersWithRoom } from '../../lib/stages/response-headers.ts';
import { InnerSubscriber, ObserverSubscriber, stageHandler, subscribeNext, type Startable } from '../../lib/subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/** Passes values on: the shape of a stage's own subscriber. */
class Pass<T> extends InnerSubscriber<T> {
  protected onNext(value: T): void {
    this.downstream.next(value);
  }
}

const ok: GatewayResponse = { status: 200, headers: [], body: null };
const asDownstream = (s: InnerSubscriber<number>): Subscriber<number> => s as unknown as Subscriber<number>;
const sink = (): Subscriber<number> => new Subscriber<number>({ next: () => {}, error: () => {}, complete: () => {} });

/** Runs `fn` with `config.onUnhandledError` collecting what RxJS would report, and waits for the reports. */
async function reported(fn: () => void): Promise<unknown[]> {
  const seen: unknown[] = [];
  config.onUnhandledError = (err) => seen.push(err);
  fn();
  await new Promise((resolve) => setTimeout(resolve, 20));
  return seen;
}

describe('a stage started with a plain observer (the edge\'s)', () => {
  afterEach(() => {
    config.onUnhandledError = null;
    config.useDeprecatedNextContext = false;
  });

  const handler = (body: Parameters<typeof stageHandler>[1], next: Handler = () => of(ok)) => stageHandler('h', body, next) as Handler & Startable;
  const req = { id: 'r' } as GatewayRequest;

  it('runs on an ObserverSubscriber, which the edge gets back to stop it', () => {
    let stopped = 0;
    const next = Object.assign((() => of(ok)) as Handler, { start: () => ({ unsubscribe: () => { stopped++; } }) });
    const h = handler((n, r, s) => subscribeNext(n, r, s), next);
    const stop = h.start(req, { next: () => {}, error: () => {}, complete: () => {} });
    expect(stop).toBeInstanceOf(ObserverSubscriber);
    stop!.unsubscribe();
    stop!.unsubscribe();
    expect(stopped).toBe(1);
  });

  it('is no InnerSubscriber (a fifth class through its methods made them megamorphic), and tearing it down stops the stage\'s subscriber and the upstream once', () => {
    const log: string[] = [];
    const next = Object.assign((() => of(ok)) as Handler, { start: () => ({ unsubscribe: () => { log.push('upstream'); } }) });
    const h = handler((n, r, s) => {
      const pass = new Pass<GatewayResponse>(s as Subscriber<GatewayResponse>);
      pass.add(() => log.push('stage'));
      subscribeNext(n, r, pass);
      return () => log.push('body');
    }, next);
    const stop = h.start(req, { next: () => log.push('next'), error: () => log.push('error'), complete: () => log.push('complete') });
    expect(stop).toBeInstanceOf(ObserverSubscriber);
    expect(stop).not.toBeInstanceOf(InnerSubscriber);
    stop!.unsubscribe();
    stop!.unsubscribe();
    expect(log).toEqual(['stage', 'upstream', 'body']);
  });

  it('runs a teardown added after its stage\'s subscriber ended on its own, and reports a throwing one after the rest', () => {
    const log: string[] = [];
    const boom = new Error('teardown');
    let inner: Pass<GatewayResponse> | null = null;
    const h = handler((_n, _r, s) => {
      inner = new Pass<GatewayResponse>(s as Subscriber<GatewayResponse>);
      inner.add(() => { throw boom; });
      return undefined;
    });
    const stop = h.start(req, { next: () => {}, error: () => {}, complete: () => log.push('complete') }) as unknown as ObserverSubscriber<GatewayResponse>;
    let thrown: unknown = null;
    try {
      inner!.unsubscribe();
    } catch (err) {
      thrown = err;
    }
    expect((thrown as UnsubscriptionError).errors).toEqual([boom]);
    stop.add(() => log.push('later'));
    expect(log).toEqual([]);
    stop.complete();
    expect(log).toEqual(['complete', 'later']);
    expect(stop.closed).toBe(true);
    stop.add(() => log.push('after close'));
    expect(log).toEqual(['complete', 'later', 'after close']);
  });

  it('comes out of its teardown with the inner subscriber\'s throw as an UnsubscriptionError, its other teardowns run', () => {
    const log: string[] = [];
    const boom = new Error('inner teardown');
    const h = handler((_n, _r, s) => {
      const pass = new Pass<GatewayResponse>(s as Subscriber<GatewayResponse>);
      pass.add(() => { throw boom; });
      return () => log.push('body');
    });
    const stop = h.start(req, { next: () => {}, error: () => {}, complete: () => {} });
    let thrown: unknown = null;
    try {
      stop!.unsubscribe();
    } catch (err) {
      thrown = err;
    }
    expect((thrown as UnsubscriptionError).errors).toEqual([boom]);
    expect(log).toEqual(['body']);
    expect((stop as Subscription).closed).toBe(true);
  });

  it('delivers to the handlers the observer has, and nothing after completion', () => {
    const seen: string[] = [];
    const h = handler((_n, _r, s) => {
      s.next(ok);
      s.complete();
      s.next(ok);
      s.error(new Error('late'));
    });
    const stop = h.start(req, { next: (r: GatewayResponse) => seen.push(`next ${r.status}`), complete: () => seen.push('complete') } as unknown as Observer<GatewayResponse>);
    expect(seen).toEqual(['next 200', 'complete']);
    expect((stop as Subscription).closed).toBe(true);
  });

  it('reports what the observer throws, and an error it has no handler for, as RxJS does', async () => {
    const boom = new Error('observer threw');
    const refused = new Error('refused');
    const seen = await reported(() => {
      handler((_n, _r, s) => { s.next(ok); s.complete(); }).start(req, { next: () => { throw boom; }, error: () => {}, complete: () => {} });
      handler((_n, _r, s) => { s.error(refused); }).start(req, { next: () => {} } as unknown as Observer<GatewayResponse>);
    });
    expect(seen).toEqual([boom, refused]);
  });

  it('turns a throw in the body into the observer\'s error', () => {
    const errors: unknown[] = [];
    const boom = new Error('body');
    handler(() => { throw boom; }).start(req, { next: () => {}, error: (e) => errors.push(e), complete: () => {} });
    expect(errors).toEqual([boom]);
  });

  it('goes through RxJS\'s subscribe with its deprecated next context on, or for what looks like a Subscription', () => {
    config.useDeprecatedNextContext = true;
    const h = handler((_n, _r, s) => { s.next(ok); s.complete(); });
    expect(h.start(req, { next: () => {}, error: () => {}, complete: () => {} })).not.toBeInstanceOf(ObserverSubscriber);
    config.useDeprecatedNextContext = false;
    const looksLikeOne = { closed: false, next() {}, error() {}, complete() {}, add() {}, remove() {}, unsubscribe() {} };
    expect(h.start(req, looksLikeOne)).not.toBeInstanceOf(ObserverSubscriber);
  });
});

describe('InnerSubscriber holds its first teardown in a field', () => {
  it('tears a first teardown that is not a Subscription down before the ones added later, as RxJS\'s array would', () => {
    const log: string[] = [];
    const a = new Pass<number>(sink());
    a.add({ unsubscribe: () => log.push('object') });
    a.add(() => log.push('function'));
    a.add(new Subscription(() => log.push('subscription')));
    const plain = new Subscription();
    plain.add({ unsubscribe: () => log.push('object') });
    plain.add(() => log.push('function'));
    plain.add(new Subscription(() => log.push('subscription')));
    a.unsubscribe();
    plain.unsubscribe();
    expect(log).toEqual(['object', 'function', 'subscription', 'object', 'function', 'subscription']);
  });

  it('takes nothing as first once something went to the array, so the order stays that of the adds', () => {
    const log: string[] = [];
    const a = new Pass<number>(sink());
    const early = new Subscription(() => log.push('subscription'));
    a.add(early);
    a.add(() => log.push('function'));
    const child = new Pass<number>(asDownstream(a));
    child.add(() => log.push('child'));
    a.unsubscribe();
    expect(log).toEqual(['subscription', 'function', 'child']);
  });

  it('forgets a removed first teardown, runs one added when already closed at once, and reports a throwing one', () => {
    let runs = 0;
    const a = new Pass<number>(sink());
    const f = (): void => { runs++; };
    a.add(f);
    a.remove(f);
    a.unsubscribe();
    expect(runs).toBe(0);
    a.add(f);
    expect(runs).toBe(1);
    const b = new Pass<number>(sink());
    const boom = new Error('teardown');
    b.add(() => { throw boom; });
    b.add(f);
    let thrown: unknown = null;
    try {
      b.unsubscribe();
    } catch (err) {
      thrown = err;
    }
    expect((thrown as UnsubscriptionError).errors).toEqual([boom]);
    expect(runs).toBe(2);
  });
});

describe('subscribeNext', () => {
  it('fails the subscriber it was given when the next handler throws instead of returning its Observable', () => {
    const errors: string[] = [];
    const outer = new Subscriber<GatewayResponse>({ next: () => {}, error: (e: unknown) => errors.push(`outer ${String(e)}`), complete: () => {} });
    class Seen extends InnerSubscriber<GatewayResponse> {
      protected onNext(res: GatewayResponse): void {
        this.downstream.next(res);
      }
      protected override onError(err: unknown): void {
        errors.push(`inner ${String(err)}`);
        super.onError(err);
      }
    }
    const throws: Handler = () => {
      throw new Error('no');
    };
    subscribeNext(throws, { id: 'r' } as GatewayRequest, new Seen(outer));
    expect(errors).toEqual(['inner Error: no', 'outer Error: no']);
  });
});

describe('circuitBreaker and req.locals.breaker', () => {
  it('records its verdict for an observed request (access log or tracing on) and leaves others alone', () => {
    const policy = circuitBreaker(new Breaker({ consecutiveFailures: 1 }));
    const handler = policy(() => of(ok));
    const observed = gatewayRequest({ path: '/' });
    observed.locals.attempts = 0;
    const plain = gatewayRequest({ path: '/' });
    handler(observed).subscribe();
    handler(plain).subscribe();
    expect(observed.locals.breaker).toBe('pass');
    expect('breaker' in plain.locals).toBe(false);
  });
});

describe('headersWithRoom', () => {
  it('copies the list with empty slots at its end and leaves the original alone', () => {
    const h = ['a', '1', 'b', '2'];
    const out = headersWithRoom(h, 2);
    expect(out.length).toBe(6);
    out[4] = 'c';
    out[5] = '3';
    expect(out).toEqual(['a', '1', 'b', '2', 'c', '3']);
    expect(h).toEqual(['a', '1', 'b', '2']);
  });
});
