import { Observable, of, Subject, VirtualTimeScheduler } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { GatewayTimeoutError } from '../../lib/errors.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { retry } from '../../lib/stages/retry/retry.ts';
import { timeout } from '../../lib/stages/timeout/timeout.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

let scheduler: TestScheduler;
beforeEach(() => {
  scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
});

function request(): GatewayRequest {
  return gatewayRequest();
}

const ok: GatewayResponse = { status: 200, headers: [], body: null };

describe('timeout', () => {
  it('unsubscribes the inner exchange and errors with 504 when no response head comes in time', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const inner = cold('10ms a|', { a: ok });
      const h = timeout({ head: 5, scheduler })(() => inner);
      expectObservable(h(request())).toBe('5ms #', undefined, new GatewayTimeoutError('no response from upstream within 5ms'));
      expectSubscriptions(inner.subscriptions).toBe('^----!');
    });
  });

  it('passes a response whose head came in time, however long its body then takes', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const inner = cold('-a 20ms |', { a: ok });
      const h = timeout({ head: '3ms', scheduler })(() => inner);
      expectObservable(h(request())).toBe('-a 20ms |', { a: ok });
      expectSubscriptions(inner.subscriptions).toBe('^ 21ms !');
    });
  });

  it('cuts the whole exchange short at the exchange limit, even after the head went out', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const inner = cold('-a 20ms |', { a: ok });
      const h = timeout({ head: 3, exchange: 10, scheduler })(() => inner);
      expectObservable(h(request())).toBe('-a 8ms #', { a: ok }, new GatewayTimeoutError('upstream exchange took longer than 10ms'));
      expectSubscriptions(inner.subscriptions).toBe('^ 9ms !');
    });
  });

  it('stops its timers and the inner exchange when unsubscribed first', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const inner = cold('20ms a|', { a: ok });
      const h = timeout({ head: 10, exchange: 15, scheduler })(() => inner);
      expectObservable(h(request()), '^--!').toBe('');
      expectSubscriptions(inner.subscriptions).toBe('^--!');
    });
  });

  it('runs the inner teardown on expiry', () => {
    scheduler.run(() => {
      let tornDown = false;
      const h = timeout({ head: 5, scheduler })(() => new Observable<GatewayResponse>(() => () => (tornDown = true)));
      const errors: unknown[] = [];
      h(request()).subscribe({ error: (e: unknown) => errors.push(e) });
      scheduler.flush();
      expect(tornDown).toBe(true);
      expect(errors[0]).toBeInstanceOf(GatewayTimeoutError);
      expect((errors[0] as GatewayTimeoutError).status).toBe(504);
    });
  });

  it('inside retry bounds each attempt, and its 504 is retried', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const slow = cold('10ms a|', { a: ok });
      const fast = cold('-a|', { a: ok });
      let n = 0;
      const upstream: Handler = () => (n++ === 0 ? slow : fast);
      const perAttempt = timeout({ head: 5, scheduler });
      const h = retry({ base: 100, random: () => 0.5, budget: false, scheduler })(perAttempt(upstream));
      expectObservable(h(request())).toBe('56ms a|', { a: { ...ok, headers: ['x-gateway-attempts', '2'] } });
      expectSubscriptions(slow.subscriptions).toBe('^----!');
      expectSubscriptions(fast.subscriptions).toBe('55ms ^-!');
    });
  });

  it('outside retry bounds all attempts together', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const failing = cold<GatewayResponse>('-#', undefined, new GatewayTimeoutError('x'));
      const total = timeout({ head: 30, scheduler });
      const h = total(retry({ base: 100, random: () => 0.5, budget: false, scheduler })(() => failing));
      expectObservable(h(request())).toBe('30ms #', undefined, new GatewayTimeoutError('no response from upstream within 30ms'));
    });
  });

  it('is the identity with no limit set, and throws TypeError on a bad duration', () => {
    const next: Handler = () => new Observable();
    expect(timeout({ head: null })(next)).toBe(next);
    expect(() => timeout({ head: 'later' })).toThrow(TypeError);
    expect(() => timeout({ exchange: -1 })).toThrow(TypeError);
  });

  // Outside TestScheduler.run (which would make the default asyncScheduler
  // virtual too), so only a timer on the given runtime can fire here.
  it('runs its timers on the runtime it is given', () => {
    const vts = new VirtualTimeScheduler();
    const h = timeout({ head: 5, runtime: virtualRuntime(vts) })(() => new Observable<GatewayResponse>());
    const errors: unknown[] = [];
    h(request()).subscribe({ error: (e: unknown) => errors.push([vts.now(), e]) });
    vts.flush();
    expect(errors).toEqual([[5, new GatewayTimeoutError('no response from upstream within 5ms')]]);
  });

  it('takes scheduler over runtime when given both', () => {
    const onRuntime = new VirtualTimeScheduler();
    const scheduler = new VirtualTimeScheduler();
    const h = timeout({ head: 5, runtime: virtualRuntime(onRuntime), scheduler })(() => new Observable<GatewayResponse>());
    h(request()).subscribe({ error: () => {} });
    expect(onRuntime.actions).toHaveLength(0);
    expect(scheduler.actions).toHaveLength(1);
  });

  it('cuts the exchange short on the runtime, and leaves no timer behind once an exchange ends', () => {
    const vts = new VirtualTimeScheduler();
    const body = new Subject<GatewayResponse>();
    const policy = timeout({ head: 3, exchange: 10, runtime: virtualRuntime(vts) });
    const slow = policy(() => body);
    const seen: unknown[] = [];
    slow(request()).subscribe({ next: (r) => seen.push(r.status), error: (e: unknown) => seen.push([vts.now(), (e as GatewayTimeoutError).status]) });
    vts.schedule(() => body.next(ok), 1);
    vts.flush();
    expect(seen).toEqual([200, [10, 504]]);
    expect(body.observed).toBe(false);

    const fast = policy(() => of(ok));
    fast(request()).subscribe();
    expect(vts.actions).toHaveLength(0);
  });
});
