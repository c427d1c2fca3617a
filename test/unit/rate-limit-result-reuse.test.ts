import { of, type Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { gcraResult, gcraRule, toMicros, type RateLimitResult } from '../../lib/stages/rate-limit/gcra.ts';
import { MemoryRateLimitStore } from '../../lib/stages/rate-limit/memory-store.ts';
import { rateLimit } from '../../lib/stages/rate-limit/rate-limit.ts';
import type { GatewayResponse } from '../../lib/types.ts';
import { callNow, gatewayRequest } from '../support/request.ts';

function fakeClock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => { t += ms; } };
}

/** What the store must answer, from its own arithmetic (one GCRA step on `tat`). */
function expected(rule: ReturnType<typeof gcraRule>, tat: number | undefined, nowMs: number): { result: RateLimitResult; tat: number } {
  const now = toMicros(nowMs);
  const from = tat === undefined || tat < now ? now : tat;
  const next = from + rule.emissionUs;
  const ahead = next - now;
  if (ahead > rule.toleranceUs) return { result: gcraResult(rule, false, from - now, ahead - rule.toleranceUs), tat: from };
  return { result: gcraResult(rule, true, ahead, 0), tat: next };
}

describe('the memory store hands a repeated admission the same result', () => {
  it('gives a client within its rate one result object, equal to a fresh one', () => {
    const clock = fakeClock();
    const store = new MemoryRateLimitStore({ clock });
    const rule = gcraRule(10, 1000);
    const first = store.consume('a', rule);
    clock.advance(500);
    const second = store.consume('a', rule);
    expect(second).toBe(first);
    expect(second).toEqual(gcraResult(rule, true, rule.emissionUs, 0));
  });

  it('answers every check as a fresh GCRA step would, across rules, keys, bursts and refusals', () => {
    // Three rules sharing one store (three routes) with the same emission
    // interval (so the same `ahead`) but other limits and bursts, keys
    // interleaved, time moving in uneven steps: each answer equal to the
    // step's own result.
    const clock = fakeClock(5_000);
    const store = new MemoryRateLimitStore({ clock });
    const rules = [gcraRule(10, 1000), gcraRule(10, 1000, 2), gcraRule(20, 2000)];
    const tats = new Map<string, number>();
    let seed = 7;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    let reused = 0;
    let last: RateLimitResult | null = null;
    for (let i = 0; i < 400; i++) {
      const r = Math.floor(random() * 3);
      const key = `${r}:${Math.floor(random() * 3)}`;
      clock.advance(Math.floor(random() * 4) * 45);
      const want = expected(rules[r]!, tats.get(key), clock.now());
      const got = store.consume(key, rules[r]!);
      expect(got).toEqual(want.result);
      tats.set(key, want.tat);
      if (got === last) reused++;
      last = got;
    }
    expect(reused).toBeGreaterThan(0);
  });

  it('puts each request\'s own values in its headers when results change between them', () => {
    // remaining 2, 1, 0, then 2 again after the bucket refilled; the header
    // values are made once per result, and must follow each one.
    const clock = fakeClock();
    const next = (): Observable<GatewayResponse> => of({ status: 200, headers: [], body: null });
    const handler = rateLimit({ store: new MemoryRateLimitStore({ clock }), limit: 3, window: '3s' })(next);
    const remaining: string[] = [];
    const reset: string[] = [];
    const run = () => {
      const res = callNow(handler, gatewayRequest({ remoteAddress: '10.0.0.1' })) as GatewayResponse;
      remaining.push(res.headers[res.headers.indexOf('ratelimit-remaining') + 1]!);
      reset.push(res.headers[res.headers.indexOf('ratelimit-reset') + 1]!);
    };
    run();
    run();
    run();
    clock.advance(10_000);
    run();
    clock.advance(10_000);
    run();
    expect(remaining).toEqual(['2', '1', '0', '2', '2']);
    expect(reset).toEqual(['1', '2', '3', '1', '1']);
  });
});

describe('the memory store\'s sweep', () => {
  it('forgets at most two expired keys from the front per check, stops at a live one, and keeps the key being checked', () => {
    const clock = fakeClock(1_000);
    const store = new MemoryRateLimitStore({ clock });
    const rule = gcraRule(10, 1000); // one request costs 100 ms
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) store.consume(`k${i}`, rule); // k0..k4, each live until 1,100
    sizes.push(store.size);
    clock.advance(50);
    store.consume('fresh', rule); // front k0 still live: nothing forgotten
    sizes.push(store.size);
    clock.advance(100);
    store.consume('fresh', rule); // k0, k1 expired: both forgotten, the third not looked at
    sizes.push(store.size);
    store.consume('k2', rule); // k2 (expired, being checked) kept and moved back, k3 forgotten
    sizes.push(store.size);
    store.consume('k9', rule); // k4 forgotten, then `fresh` (live until 1,250) stops the sweep
    sizes.push(store.size);
    expect(sizes).toEqual([5, 6, 4, 3, 3]);
  });
});
