import { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { BadGatewayError } from '../../lib/errors.ts';
import { retry } from '../../lib/stages/retry/retry.ts';
import { RetryBudget } from '../../lib/stages/retry/budget.ts';
import { HoldingSubscriber, InnerSubscriber, type Startable } from '../../lib/subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

// The run is the first attempt's subscriber itself; later attempts get their own.

let scheduler: TestScheduler;
beforeEach(() => {
  scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
});

const fixed = { base: 100, cap: 1000, random: () => 0.5, statuses: [502] } as const;

/** A handler answering attempt i with the i-th observable. */
function attemptsOf(list: Observable<GatewayResponse>[]): Handler {
  let i = 0;
  return () => list[Math.min(i++, list.length - 1)]!;
}

describe('RetryRun as the first attempt\'s subscriber', () => {
  it('gives the budget slot back when the client goes away during the wait before the retry', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const budget = new RetryBudget({ ratio: 0, minRetries: 0, minConcurrent: 1, clock: { now: () => scheduler.now() } });
      const a1 = cold<GatewayResponse>('-#', undefined, new BadGatewayError('reset'));
      const a2 = cold<GatewayResponse>('-a|', { a: { status: 200, headers: [], body: null } });
      const h = retry({ ...fixed, budget, scheduler })(attemptsOf([a1, a2]));
      // The wait is 50ms after the failure at 1ms: gone at 20ms, in the middle of it.
      expectObservable(h(gatewayRequest()), '^ 19ms !').toBe('');
      expectSubscriptions(a2.subscriptions).toBe([]);
      scheduler.flush();
      expect(budget.counts.retries).toBe(1);
      expect(budget.active).toBe(0);
    });
  });

  it('tears the first attempt down before the wait, and passes the second one\'s answer on with its number', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const a1 = cold<GatewayResponse>('--#', undefined, new BadGatewayError('reset'));
      const a2 = cold<GatewayResponse>('-a|', { a: { status: 200, headers: ['x', '1'], body: null } });
      const h = retry({ ...fixed, budget: false, scheduler })(attemptsOf([a1, a2]));
      expectObservable(h(gatewayRequest())).toBe('53ms a|', { a: { status: 200, headers: ['x', '1', 'x-gateway-attempts', '2'], body: null } });
      expectSubscriptions(a1.subscriptions).toBe('^-!');
      expectSubscriptions(a2.subscriptions).toBe('52ms ^-!');
    });
  });

  it('delivers nothing after the first attempt completed, and stops that attempt when the downstream goes away', () => {
    let tornDown = 0;
    const seen: GatewayResponse[] = [];
    let sink: { next(r: GatewayResponse): void; complete(): void } | null = null;
    const h = retry({ ...fixed, budget: false })(() => new Observable<GatewayResponse>((s) => {
      sink = s;
      return () => tornDown++;
    }));
    const sub = h(gatewayRequest()).subscribe((r) => seen.push(r));
    sub.unsubscribe();
    expect(tornDown).toBe(1);
    sink!.next({ status: 200, headers: [], body: null });
    expect(seen).toEqual([]);
  });

  it('gives a later attempt a subscriber that is no InnerSubscriber (a fifth class made theirs megamorphic), which stops that attempt when the client goes away', () => {
    const seen: Array<{ observer: unknown; stopped: number }> = [];
    const next = Object.assign((() => { throw new Error('started, not subscribed'); }) as Handler, {
      start(_req: GatewayRequest, observer: { error(e: unknown): void }) {
        const attempt = { observer: observer as unknown, stopped: 0 };
        seen.push(attempt);
        if (seen.length === 1) observer.error(new BadGatewayError('reset'));
        return { unsubscribe: () => { attempt.stopped++; } };
      },
    } satisfies Partial<Startable>) as Handler;
    scheduler.run(({ expectObservable }) => {
      const h = retry({ ...fixed, budget: false, scheduler })(next);
      // The first attempt fails at once, the second starts after the 50ms wait; the client leaves at 80ms.
      expectObservable(h(gatewayRequest()), '^ 79ms !').toBe('');
    });
    expect(seen).toHaveLength(2);
    expect(seen[1]!.observer).toBeInstanceOf(HoldingSubscriber);
    expect(seen[1]!.observer).not.toBeInstanceOf(InnerSubscriber);
    expect(seen.map((a) => a.stopped)).toEqual([1, 1]);
  });
});
