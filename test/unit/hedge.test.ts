import { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { BadGatewayError } from '../../lib/errors.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { hedge } from '../../lib/stages/hedge/hedge.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';

let scheduler: TestScheduler;
beforeEach(() => {
  scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
});

function request(method = 'GET'): GatewayRequest {
  return {
    id: 'r1', method, path: '/', query: '', normalizedPath: '/', headers: {},
    remoteAddress: '127.0.0.1', protocol: 'http', body: null, params: {}, receivedAt: 0, locals: {}, attempt: { number: 1, tried: ['http://old'], instance: null },
  };
}

const a: GatewayResponse = { status: 200, headers: ['from', 'a'], body: null };
const b: GatewayResponse = { status: 200, headers: ['from', 'b'], body: null };

/** A handler that sends attempt n to instance `i<n>` and answers with `sources[n]`, recording each request. */
function instances(sources: Array<Observable<GatewayResponse>>, seen: GatewayRequest[]): Handler {
  return (req) => {
    const n = seen.length;
    seen.push(req);
    req.attempt.instance = `http://i${n}`;
    return sources[n]!;
  };
}

describe('hedge', () => {
  it('sends nothing more when the first head comes in time', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const first = cold('5ms a|', { a });
      const seen: GatewayRequest[] = [];
      const h = hedge({ after: 10, runtime: virtualRuntime(scheduler) })(instances([first], seen));
      expectObservable(h(request())).toBe('5ms a|', { a });
      expectSubscriptions(first.subscriptions).toBe('^ 5ms !');
    });
  });

  it('sends a second attempt to another instance after `after`; the first head wins and the loser is unsubscribed', () => {
    const seen: GatewayRequest[] = [];
    const outcomes: string[] = [];
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const slow = cold('50ms a|', { a });
      const fast = cold('5ms b|', { b });
      const h = hedge({ after: 10, runtime: virtualRuntime(scheduler), onHedge: (o) => outcomes.push(o) })(instances([slow, fast], seen));
      expectObservable(h(request())).toBe('15ms b|', { b });
      expectSubscriptions(slow.subscriptions).toBe('^ 14ms !');
      expectSubscriptions(fast.subscriptions).toBe('10ms ^ 5ms !');
    });
    expect(seen[1]!.attempt.tried).toEqual(['http://old', 'http://i0']);
    expect(outcomes).toEqual(['sent', 'won']);
  });

  it('keeps the first when its head comes before the hedge’s, and counts the hedge lost', () => {
    const outcomes: string[] = [];
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const first = cold('12ms a|', { a });
      const second = cold('20ms b|', { b });
      const h = hedge({ after: 10, runtime: virtualRuntime(scheduler), onHedge: (o) => outcomes.push(o) })(instances([first, second], []));
      expectObservable(h(request())).toBe('12ms a|', { a });
      expectSubscriptions(second.subscriptions).toBe('10ms ^-!');
    });
    expect(outcomes).toEqual(['sent', 'lost']);
  });

  it('fails only once every attempt has failed, with the last error', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const e1 = new BadGatewayError('one');
      const e2 = new BadGatewayError('two');
      const h = hedge({ after: 10, runtime: virtualRuntime(scheduler) })(instances([cold('30ms #', undefined, e1), cold('25ms #', undefined, e2)], []));
      expectObservable(h(request())).toBe('35ms #', undefined, e2);
    });
  });

  it('never hedges a POST, and max: 0 is the identity', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const first = cold('50ms a|', { a });
      const h = hedge({ after: 10, runtime: virtualRuntime(scheduler) })(instances([first], []));
      expectObservable(h(request('POST'))).toBe('50ms a|', { a });
      expectSubscriptions(first.subscriptions).toBe('^ 50ms !');
    });
    const next: Handler = () => new Observable();
    expect(hedge({ max: 0 })(next)).toBe(next);
    expect(() => hedge({ after: 'soon' })).toThrow(TypeError);
  });

  it('with after: p95, hedges at the 95th percentile of recent times to a head (50 ms until 32 are known)', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const slow = cold('40ms a|', { a });
      const fast = cold('2ms b|', { b });
      let n = 0;
      const sources = (): Observable<GatewayResponse> => {
        n++;
        if (n <= 32) return cold('a|', { a }); // 32 heads at once: p95 = 0, floored to 1 ms
        return n === 33 ? slow : fast;
      };
      const h = hedge({ after: 'p95', runtime: virtualRuntime(scheduler) })((req) => {
        req.attempt.instance = `http://i${n}`;
        return sources();
      });
      for (let i = 0; i < 32; i++) h(request()).subscribe();
      expectObservable(h(request())).toBe('3ms b|', { b });
    });
    expect(() => hedge({ after: 'p100' as 'p95' })).toThrow(TypeError);
  });
});
