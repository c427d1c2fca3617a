import { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { BufferedBody, collectBody } from '../../lib/body.ts';
import { BadGatewayError, BadRequestError, GatewayTimeoutError, ServiceUnavailableError } from '../../lib/errors.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { retry } from '../../lib/stages/retry/retry.ts';
import { RetryBudget } from '../../lib/stages/retry/budget.ts';
import type { Body, GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

let scheduler: TestScheduler;
beforeEach(() => {
  scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
});

function request(method = 'GET', body: Body | null = null): GatewayRequest {
  return gatewayRequest({ method, body });
}

const res = (status: number, headers: string[] = [], body: Body | null = null): GatewayResponse => ({ status, headers, body });
const withAttempts = (r: GatewayResponse, n: number): GatewayResponse => ({ ...r, headers: [...r.headers, 'x-gateway-attempts', String(n)] });

/** A handler giving attempt i the i-th observable, and recording each attempt's request. */
function attemptsOf(list: Observable<GatewayResponse>[]): Handler & { seen: GatewayRequest[] } {
  const seen: GatewayRequest[] = [];
  let i = 0;
  return Object.assign((req: GatewayRequest) => {
    seen.push(req);
    return list[Math.min(i++, list.length - 1)]!;
  }, { seen });
}

/** A one-shot body that records being destroyed. */
function streamBody(text: string, length: number | null) {
  return {
    length,
    destroyed: false,
    pipe(sink: { write(c: Uint8Array): boolean; end(): void }) {
      sink.write(Buffer.from(text));
      sink.end();
    },
    resume() {},
    destroy() {
      this.destroyed = true;
    },
  };
}

// random() = 0.5 makes the first retry wait 50ms with base 100ms, the second 100ms.
// Statuses are listed: by default none is retried (see 'the safe defaults').
const fixed = { base: 100, cap: 1000, random: () => 0.5, budget: false, statuses: [502, 503, 504] } as const;

describe('retry', () => {
  it('re-subscribes after a retryable error, waiting the jittered backoff', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const ok = res(200);
      const a1 = cold<GatewayResponse>('--#', undefined, new BadGatewayError('refused'));
      const a2 = cold<GatewayResponse>('--#', undefined, new GatewayTimeoutError('slow'));
      const a3 = cold('--a|', { a: ok });
      const h = retry({ ...fixed, scheduler })(attemptsOf([a1, a2, a3]));
      // a1 errs at 2, wait 50; a2 from 52 errs at 54, wait 100; a3 from 154
      expectObservable(h(request())).toBe('156ms a|', { a: withAttempts(ok, 3) });
      expectSubscriptions(a1.subscriptions).toBe('^-!');
      expectSubscriptions(a2.subscriptions).toBe('52ms ^-!');
      expectSubscriptions(a3.subscriptions).toBe('154ms ^--!');
    });
  });

  it('discards a retryable status response, destroying its body, and tries again', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const body = streamBody('busy', 4);
      const a1 = cold('-a', { a: res(503, [], body) });
      const a2 = cold('-b|', { b: res(200) });
      const h = retry({ ...fixed, retryAfter: false, scheduler })(attemptsOf([a1, a2]));
      expectObservable(h(request())).toBe('52ms b|', { b: withAttempts(res(200), 2) });
      expectSubscriptions(a1.subscriptions).toBe('^!');
      scheduler.flush();
      expect(body.destroyed).toBe(true);
    });
  });

  it('lets the last attempt\'s retryable status through with the attempt count', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const a = cold('-a|', { a: res(502) });
      const h = retry({ ...fixed, attempts: 2, scheduler })(attemptsOf([a]));
      expectObservable(h(request())).toBe('52ms a|', { a: withAttempts(res(502), 2) });
    });
  });

  it('does not retry a POST', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const err = new BadGatewayError('refused');
      const a = cold<GatewayResponse>('--#', undefined, err);
      const h = retry({ ...fixed, scheduler })(attemptsOf([a]));
      expectObservable(h(request('POST'))).toBe('--#', undefined, err);
      expectSubscriptions(a.subscriptions).toBe('^-!');
    });
  });

  it('does not retry when the request body cannot be replayed', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const err = new BadGatewayError('refused');
      const a = cold<GatewayResponse>('-#', undefined, err);
      const h = retry({ ...fixed, scheduler })(attemptsOf([a]));
      // unknown length, and a known one over the buffer limit
      expectObservable(h(request('PUT', streamBody('x', null)))).toBe('-#', undefined, err);
      const small = retry({ ...fixed, bufferLimit: 10, scheduler })(attemptsOf([a]));
      expectObservable(small(request('PUT', streamBody('x'.repeat(11), 11)))).toBe('-#', undefined, err);
      expectSubscriptions(a.subscriptions).toBe(['^!', '^!']);
    });
  });

  it('buffers a short streamed body and gives every attempt a replay of the same bytes', async () => {
    const bodies: Body[] = [];
    let n = 0;
    const upstream: Handler = (req) => new Observable((s) => {
      bodies.push(req.body!);
      if (++n === 1) s.error(new BadGatewayError('reset'));
      else {
        s.next(res(200));
        s.complete();
      }
    });
    const h = retry({ ...fixed, base: 0 })(upstream);
    const out = await new Promise<GatewayResponse>((resolve, reject) => {
      h(request('PUT', streamBody('{"a":1}', 7))).subscribe({ next: resolve, error: reject });
    });
    expect(out.status).toBe(200);
    expect(bodies).toHaveLength(2);
    expect(bodies[0]).not.toBe(bodies[1]);
    for (const b of bodies) expect((await collectBody(b)).toString()).toBe('{"a":1}');
  });

  it('passes a BufferedBody request body to the first attempt and a replay of it to every other', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const original = BufferedBody.of('hello');
      const seen: Body[] = [];
      const a1 = cold<GatewayResponse>('-#', undefined, new BadGatewayError('x'));
      const a2 = cold('-a|', { a: res(200) });
      const list = [a1, a2];
      const h = retry({ ...fixed, scheduler })((req) => {
        seen.push(req.body!);
        return list[seen.length - 1]!;
      });
      expectObservable(h(request('PUT', original))).toBe('52ms a|', { a: withAttempts(res(200), 2) });
      scheduler.flush();
      expect(seen).toHaveLength(2);
      expect(seen[0]).toBe(original);
      expect(seen[1]).toBeInstanceOf(BufferedBody);
      expect(seen[1]).not.toBe(original);
      expect(seen[1]!.length).toBe(5);
    });
  });

  it('never retries once a response went downstream', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const err = new BadGatewayError('body broke');
      const a = cold('-a-#', { a: res(200) }, err);
      const h = retry({ ...fixed, scheduler })(attemptsOf([a]));
      expectObservable(h(request())).toBe('-a-#', { a: withAttempts(res(200), 1) }, err);
      expectSubscriptions(a.subscriptions).toBe('^--!');
    });
  });

  it('does not retry errors that are not retryable', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const err = new BadRequestError('no');
      const h = retry({ ...fixed, scheduler })(attemptsOf([cold<GatewayResponse>('-#', undefined, err)]));
      expectObservable(h(request())).toBe('-#', undefined, err);
    });
  });

  it('propagates unsubscription to the attempt under way and cancels a pending wait', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const a1 = cold<GatewayResponse>('--#', undefined, new BadGatewayError('x'));
      const a2 = cold<GatewayResponse>('------a|', { a: res(200) });
      const h = retry({ ...fixed, scheduler })(attemptsOf([a1, a2]));
      expectObservable(h(request()), '^ 53ms !').toBe('');
      expectSubscriptions(a1.subscriptions).toBe('^-!');
      expectSubscriptions(a2.subscriptions).toBe('52ms ^-!');
      const b1 = cold<GatewayResponse>('--#', undefined, new BadGatewayError('x'));
      const b2 = cold<GatewayResponse>('-a|', { a: res(200) });
      const h2 = retry({ ...fixed, scheduler })(attemptsOf([b1, b2]));
      expectObservable(h2(request()), '^ 10ms !').toBe('');
      expectSubscriptions(b2.subscriptions).toBe([]);
    });
  });

  it('runs the inner teardown when unsubscribed', () => {
    let tornDown = false;
    const h = retry({ ...fixed })(() => new Observable<GatewayResponse>(() => () => (tornDown = true)));
    h(request()).subscribe().unsubscribe();
    expect(tornDown).toBe(true);
  });

  it('waits as Retry-After says on a 503, in seconds or as an HTTP date, up to the cap', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const ok = res(200);
      const secs = cold('-a', { a: res(503, ['retry-after', '1']) });
      const h = retry({ ...fixed, cap: 5000, scheduler })(attemptsOf([secs, cold('-a|', { a: ok })]));
      expectObservable(h(request())).toBe('1002ms a|', { a: withAttempts(ok, 2) });

      const date = cold('-a', { a: res(503, ['retry-after', 'Sun, 06 Nov 1994 08:49:39 GMT']) });
      const h2 = retry({ ...fixed, cap: 5000, dateNow: () => Date.parse('Sun, 06 Nov 1994 08:49:37 GMT'), scheduler })(
        attemptsOf([date, cold('-a|', { a: ok })]),
      );
      expectObservable(h2(request())).toBe('2002ms a|', { a: withAttempts(ok, 2) });

      const long = cold('-a', { a: res(503, ['retry-after', '3600']) });
      const h3 = retry({ ...fixed, cap: 800, scheduler })(attemptsOf([long, cold('-a|', { a: ok })]));
      expectObservable(h3(request())).toBe('802ms a|', { a: withAttempts(ok, 2) });
    });
  });

  it('stops retrying when the budget is spent, says so, and counts the refusal', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const err = new ServiceUnavailableError('none');
      const refused: number[] = [];
      const budget = new RetryBudget({ ratio: 0, minRetries: 1, minConcurrent: 0, clock: { now: () => scheduler.now() } });
      const policy = retry({ ...fixed, budget, onRefused: (e) => refused.push(e.attempt), scheduler });
      const a = cold<GatewayResponse>('-#', undefined, err);
      const h = policy(attemptsOf([a]));
      // first request: one retry allowed, then refused; second request: refused at once
      expectObservable(h(request())).toBe('52ms #', undefined, err);
      expectObservable(h(request()), '60ms ^').toBe('61ms #', undefined, err);
      scheduler.flush();
      expect(refused).toEqual([2, 1]);
      expect(policy.counts).toEqual({ requests: 2, retries: 1, refused: 2 });
      expect(budget.counts).toEqual({ requests: 2, retries: 1, refused: 2 });
    });
  });

  it('gives each further attempt its own attempt context listing the instances tried, leaving the request it got alone', () => {
    scheduler.run(({ cold, expectObservable }) => {
      let n = 0;
      const seen: GatewayRequest[] = [];
      const h = retry({ ...fixed, scheduler })((req) => {
        seen.push(req);
        // what forward does; the second attempt fails before it picks an instance
        if (++n !== 2) req.attempt.instance = `http://u${n}`;
        return n < 3 ? cold<GatewayResponse>('-#', undefined, new BadGatewayError('x')) : cold('-a|', { a: res(200) });
      });
      const req = request();
      expectObservable(h(req)).toBe('153ms a|', { a: withAttempts(res(200), 3) });
      scheduler.flush();
      expect(seen.map((r) => ({ ...r.attempt }))).toEqual([
        { number: 1, tried: [], instance: 'http://u1' },
        { number: 2, tried: ['http://u1'], instance: null },
        { number: 3, tried: ['http://u1'], instance: 'http://u3' },
      ]);
      expect(seen[0]).toBe(req);
      expect(seen[1]).not.toBe(req);
      expect(seen[1]!.locals).toBe(req.locals);
      expect(req.attempt).toEqual({ number: 1, tried: [], instance: 'http://u1' });
    });
  });

  it('is the identity with attempts: 1, and throws TypeError on bad configuration', () => {
    const next: Handler = () => new Observable();
    expect(retry({ attempts: 1 })(next)).toBe(next);
    expect(() => retry({ attempts: 0 })).toThrow(TypeError);
    expect(() => retry({ base: 'often' })).toThrow(TypeError);
    expect(() => retry({ statuses: [700] })).toThrow(TypeError);
    expect(() => retry({ budget: { ratio: -1 } })).toThrow(TypeError);
  });
});

describe('retry: the safe defaults', () => {
  const unsent = () => new BadGatewayError('upstream refused the connection', { sent: false });

  it('passes a 502 or 503 response on without a retry unless its status is listed', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      for (const status of [500, 502, 503, 504]) {
        const a = cold('-a|', { a: res(status) });
        const h = retry({ attempts: 2, budget: false, scheduler })(attemptsOf([a]));
        expectObservable(h(request())).toBe('-a|', { a: withAttempts(res(status), 1) });
        expectSubscriptions(a.subscriptions).toBe('^-!');
      }
    });
  });

  it('retries an idempotent request once on an error before any response, with attempts: 2', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const a1 = cold<GatewayResponse>('-#', undefined, new GatewayTimeoutError('no head'));
      const a2 = cold('-a|', { a: res(200) });
      const h = retry({ attempts: 2, budget: false, random: () => 0.5, scheduler })(attemptsOf([a1, a2]));
      // default base 100ms: the first retry waits 50ms
      expectObservable(h(request())).toBe('52ms a|', { a: withAttempts(res(200), 2) });
    });
  });

  it('retries a POST at once when the upstream never saw it, passing its unread streamed body on', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const body = streamBody('{"qty":1}', 9);
      const a1 = cold<GatewayResponse>('-#', undefined, unsent());
      const a2 = cold('-a|', { a: res(201) });
      const upstream = attemptsOf([a1, a2]);
      const h = retry({ attempts: 2, budget: false, scheduler })(upstream);
      expectObservable(h(request('POST', body))).toBe('--a|', { a: withAttempts(res(201), 2) });
      scheduler.flush();
      expect(upstream.seen.map((r) => r.body)).toEqual([body, body]);
      expect(body.destroyed).toBe(false);
    });
  });

  it('does not retry a POST the upstream may have seen', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const err = new GatewayTimeoutError('no head');
      const a = cold<GatewayResponse>('-#', undefined, err);
      const h = retry({ attempts: 2, budget: false, scheduler })(attemptsOf([a]));
      expectObservable(h(request('POST', streamBody('x', 1)))).toBe('-#', undefined, err);
      expectSubscriptions(a.subscriptions).toBe('^!');
    });
  });

  it('never retries a final response (an open circuit\'s fallback), even with its status listed', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const fallback: GatewayResponse = { status: 503, headers: [], body: null, final: true };
      const a = cold('-a|', { a: fallback });
      const h = retry({ ...fixed, scheduler })(attemptsOf([a]));
      expectObservable(h(request())).toBe('-a|', { a: withAttempts(fallback, 1) });
      expectSubscriptions(a.subscriptions).toBe('^-!');
    });
  });

  it('takes its scheduler, jitter and wall clock from one runtime option', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const runtime = virtualRuntime(scheduler, { random: () => 0.5, epoch: Date.parse('Sun, 06 Nov 1994 08:49:37 GMT') });
      const a1 = cold<GatewayResponse>('-#', undefined, new BadGatewayError('reset'));
      const a2 = cold('-a', { a: res(503, ['retry-after', 'Sun, 06 Nov 1994 08:49:40 GMT']) });
      const a3 = cold('-a|', { a: res(200) });
      const h = retry({ runtime, statuses: [503], budget: false })(attemptsOf([a1, a2, a3]));
      // 50ms jitter (random 0.5 × 100ms); the 503 at 53ms asks for epoch + 3s on the
      // virtual wall clock, so the third attempt starts at 3000ms
      expectObservable(h(request())).toBe('3001ms a|', { a: withAttempts(res(200), 3) });
    });
  });
});

describe('RetryBudget minimum concurrency', () => {
  it('grants up to minConcurrent retries in flight whatever the ratio, and frees a slot when its attempt ends', () => {
    const budget = new RetryBudget({ ratio: 0, minRetries: 0, minConcurrent: 2, clock: { now: () => 0 } });
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(true);
    expect(budget.tryRetry()).toBe(false);
    budget.retryDone();
    expect(budget.tryRetry()).toBe(true);
    expect(budget.active).toBe(2);
    expect(budget.counts).toEqual({ requests: 0, retries: 3, refused: 1 });
  });

  it('gives the slot back when the retried attempt answers, and when the client goes away during it', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const budget = new RetryBudget({ ratio: 0, minRetries: 0, minConcurrent: 1, clock: { now: () => scheduler.now() } });
      const fail = () => cold<GatewayResponse>('-#', undefined, new BadGatewayError('reset'));
      const h = retry({ ...fixed, budget, scheduler })(attemptsOf([fail(), cold('-a|', { a: res(200) })]));
      expectObservable(h(request())).toBe('52ms a|', { a: withAttempts(res(200), 2) });
      scheduler.flush();
      expect(budget.active).toBe(0);

      const hang = retry({ ...fixed, budget, scheduler })(attemptsOf([fail(), cold<GatewayResponse>('-')]));
      expectObservable(hang(request()), '^ 100ms !').toBe('');
      scheduler.flush();
      expect(budget.active).toBe(0);
      expect(budget.counts.retries).toBe(2);
    });
  });
});

describe('retry: a next handler whose start throws', () => {
  it('fails the request with the throw on a later attempt too (it runs in a scheduler action, where it would be rethrown uncaught)', () => {
    scheduler.run(({ flush }) => {
      let calls = 0;
      const next = Object.assign((_req: GatewayRequest): Observable<GatewayResponse> => {
        throw new Error('not started through start');
      }, {
        start(_req: GatewayRequest, observer: { error(e: unknown): void }) {
          if (++calls === 1) {
            observer.error(new BadGatewayError('refused', { sent: false }));
            return null;
          }
          throw new Error('the balancer threw');
        },
      });
      const errors: string[] = [];
      retry({ ...fixed, scheduler })(next as Handler)(request()).subscribe({ error: (e: Error) => errors.push(e.message) });
      flush();
      expect(calls).toBe(2);
      expect(errors).toEqual(['the balancer threw']);
    });
  });

  it('goes at once to the next attempt after an unsent 503 with Retry-After: that header is for the client', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const full = new ServiceUnavailableError('no instance', { sent: false, headers: { 'retry-after': '5' } });
      const a1 = cold<GatewayResponse>('-#', undefined, full);
      const a2 = cold('-b|', { b: res(200) });
      const h = retry({ ...fixed, scheduler })(attemptsOf([a1, a2]));
      expectObservable(h(request('POST'))).toBe('--b|', { b: withAttempts(res(200), 2) });
    });
  });

  it('after a head timeout, asks the next attempts for another instance, even past a failure of another kind', () => {
    scheduler.run(({ cold, expectObservable }) => {
      const timedOut = new GatewayTimeoutError('upstream timed out', { cause: Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' }) });
      const refused = new BadGatewayError('refused', { sent: false });
      const a1 = cold<GatewayResponse>('-#', undefined, timedOut);
      const a2 = cold<GatewayResponse>('-#', undefined, refused);
      const a3 = cold('-b|', { b: res(200) });
      const h = attemptsOf([a1, a2, a3]);
      expectObservable(retry({ ...fixed, attempts: 3, scheduler })(h)(request())).toBe('53ms b|', { b: withAttempts(res(200), 3) });
      scheduler.flush();
      expect(h.seen.map((r) => r.attempt.elsewhereOr)).toEqual([undefined, timedOut, timedOut]);
    });
  });
});
