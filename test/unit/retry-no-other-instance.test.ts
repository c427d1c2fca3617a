import { Observable, throwError } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { BadGatewayError, NoOtherInstance, toGatewayError } from '../../lib/errors.ts';
import { RetryBudget } from '../../lib/stages/retry/budget.ts';
import type { RetryEvent } from '../../lib/stages/retry/decide.ts';
import { retry } from '../../lib/stages/retry/retry.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/**
 * RR2 #5: after a head timeout (connect or response head) forward fails the
 * next attempt at once with NoOtherInstance when every instance was tried.
 * That retry never left, yet it was counted (rxgate_retries_total, through
 * onRetry) and charged to the budget's window.
 */
function attemptsOf(list: Array<() => Observable<GatewayResponse>>): Handler & { seen: GatewayRequest[] } {
  const seen: GatewayRequest[] = [];
  const h = ((req: GatewayRequest) => {
    seen.push(req);
    return list[seen.length - 1]!();
  }) as Handler & { seen: GatewayRequest[] };
  h.seen = seen;
  return h;
}

const ok: GatewayResponse = { status: 200, headers: [], body: null };
// As forward makes them: undici's connect timeout (never sent) and its headers timeout (sent).
const connectTimedOut = toGatewayError(Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), false);
const headTimedOut = toGatewayError(Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' }), true);
// forward's answer when retry asks for another instance and there is none: at once, as it is subscribed.
const noOther = (req: GatewayRequest): Observable<GatewayResponse> => throwError(() => new NoOtherInstance(req.attempt.elsewhereOr));

function setup(scheduler: TestScheduler) {
  const retried: RetryEvent[] = [];
  const budget = new RetryBudget({ clock: { now: () => scheduler.now() } });
  const policy = retry({ base: 100, cap: 1000, random: () => 0.5, scheduler, budget, attempts: 3, onRetry: (e) => retried.push(e) });
  return { retried, budget, policy };
}

describe('retry that finds no other instance', () => {
  it('after a connect timeout: the attempt never sent is not counted, nor charged to the budget window', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    scheduler.run(({ cold, expectObservable }) => {
      const { retried, budget, policy } = setup(scheduler);
      const refused = new BadGatewayError('refused', { sent: false });
      // A: connect timeout; B: refused; then none left.
      const h = attemptsOf([() => cold<GatewayResponse>('-#', undefined, connectTimedOut), () => cold<GatewayResponse>('-#', undefined, refused), () => noOther(h.seen[2]!)]);
      expectObservable(policy(h)(gatewayRequest({ method: 'POST' }))).toBe('--#', undefined, connectTimedOut);
      scheduler.flush();
      expect(h.seen).toHaveLength(3);
      // Before: 2 retries counted, 2 in the budget's window, for 1 attempt sent again.
      expect(retried.map((e) => e.attempt)).toEqual([1]);
      expect(policy.counts.retries).toBe(1);
      expect(budget.counts.retries).toBe(1);
      expect(budget.window().retries).toBe(1);
      expect(budget.active).toBe(0);
    });
  });

  it('after a response head timeout: the same', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    scheduler.run(({ cold, expectObservable }) => {
      const { retried, budget, policy } = setup(scheduler);
      const h = attemptsOf([() => cold<GatewayResponse>('-#', undefined, headTimedOut), () => noOther(h.seen[1]!)]);
      expectObservable(policy(h)(gatewayRequest())).toBe('- 50ms #', undefined, headTimedOut);
      scheduler.flush();
      expect(h.seen).toHaveLength(2);
      expect(retried).toEqual([]);
      expect(policy.counts.retries).toBe(0);
      expect(budget.window().retries).toBe(0);
      expect(budget.active).toBe(0);
    });
  });

  it('after a head timeout, a retry that finds another instance is counted once, with its wait', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    scheduler.run(({ cold, expectObservable }) => {
      const { retried, budget, policy } = setup(scheduler);
      const h = attemptsOf([() => cold<GatewayResponse>('-#', undefined, headTimedOut), () => cold('-b|', { b: ok })]);
      expectObservable(policy(h)(gatewayRequest())).toBe('- 50ms -b|', { b: { ...ok, headers: ['x-gateway-attempts', '2'] } });
      scheduler.flush();
      expect(retried.map((e) => [e.attempt, e.delay])).toEqual([[1, 50]]);
      expect(policy.counts.retries).toBe(1);
      expect(budget.window().retries).toBe(1);
    });
  });
});
