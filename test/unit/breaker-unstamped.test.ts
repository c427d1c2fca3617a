import { Observable, type Subscriber } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Breaker, type PermitSlot } from '../../lib/stages/circuit-breaker/breaker.ts';
import { circuitBreaker } from '../../lib/stages/circuit-breaker/circuit-breaker.ts';
import type { GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/** A clock the test moves, counting how often it is read. */
function countingClock(start: number) {
  const clock = { t: start, reads: 0, now: () => { clock.reads++; return clock.t; } };
  return clock;
}

/** A handler whose calls the test answers by hand, through each call's subscriber. */
function driven() {
  const calls: Subscriber<GatewayResponse>[] = [];
  const handler: Handler = () => new Observable<GatewayResponse>((s) => void calls.push(s));
  return { handler, calls };
}

const OK: GatewayResponse = { status: 200, headers: [], body: null };

describe('the breaker operator reads the clock at admission only to measure slow calls', () => {
  it('reads it once per call (at the verdict) when slowCallDuration is not set', () => {
    const clock = countingClock(50_000);
    const breaker = new Breaker({ failureRate: 0.5, minimumCalls: 10, window: '10s', clock });
    const { handler, calls } = driven();
    const h = circuitBreaker(breaker)(handler);
    const before = clock.reads;
    h(gatewayRequest()).subscribe();
    expect(clock.reads - before).toBe(0);
    calls[0]!.next(OK);
    expect(clock.reads - before).toBe(1);
  });

  it('still measures a slow call from its admission, late in the clock', () => {
    // Far from 0, so that a call timed from 0 instead of its admission would be slow.
    const clock = countingClock(60_000);
    const breaker = new Breaker({ consecutiveFailures: 1, slowCallDuration: '2s', clock });
    const { handler, calls } = driven();
    const h = circuitBreaker(breaker)(handler);
    h(gatewayRequest()).subscribe();
    clock.t += 1999;
    calls[0]!.next(OK);
    expect(breaker.state).toBe('closed');
    h(gatewayRequest()).subscribe();
    clock.t += 2000;
    calls[1]!.next(OK);
    expect(breaker.state).toBe('open');
  });

  it('stamps a slot given to acquire by default, whatever slowCallDuration says', () => {
    const clock = countingClock(42);
    const breaker = new Breaker({ consecutiveFailures: 2, clock });
    const slot: PermitSlot = { generation: -1, startedAt: -1, probe: true, settled: true };
    expect(breaker.acquire(slot)).toBe(true);
    expect(slot.startedAt).toBe(42);
    expect(breaker.tryAcquire()!.startedAt).toBe(42);
    const unstamped: PermitSlot = { generation: -1, startedAt: -1, probe: true, settled: true };
    expect(breaker.acquire(unstamped, false)).toBe(true);
    expect(unstamped).toEqual({ generation: 0, startedAt: -1, probe: false, settled: false });
  });
});
