import { Observable, Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Breaker, type PermitSlot } from '../../lib/stages/circuit-breaker/breaker.ts';
import { circuitBreaker } from '../../lib/stages/circuit-breaker/circuit-breaker.ts';
import { BadGatewayError, CircuitOpenError } from '../../lib/errors.ts';
import type { GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

function manualClock() {
  const clock = { t: 0, now: () => clock.t };
  return clock;
}

const slot = (): PermitSlot => ({ generation: -1, startedAt: -1, probe: true, settled: true });

describe('Breaker.acquire (a permit in the caller\'s own object)', () => {
  it('fills in the slot as tryAcquire fills its permit, and counts a verdict on it once', () => {
    const clock = manualClock();
    const breaker = new Breaker({ consecutiveFailures: 2, clock });
    clock.t = 42;
    const s = slot();
    expect(breaker.acquire(s)).toBe(true);
    expect(s).toEqual({ generation: 0, startedAt: 42, probe: false, settled: false });
    breaker.failure(s);
    breaker.failure(s); // settled already: counts for nothing
    expect(s.settled).toBe(true);
    expect(breaker.state).toBe('closed');
    const other = slot();
    breaker.acquire(other);
    breaker.failure(other);
    expect(breaker.state).toBe('open');
  });

  it('leaves the slot as it was when it rejects, and counts the rejection', () => {
    const breaker = new Breaker({ clock: manualClock() });
    breaker.trip();
    const s = slot();
    expect(breaker.acquire(s)).toBe(false);
    expect(s).toEqual(slot());
    expect(breaker.counts.rejected).toBe(1);
  });

  it('marks a half-open admission as a probe and takes its slot until it settles', () => {
    const clock = manualClock();
    const breaker = new Breaker({ consecutiveFailures: 1, resetTimeout: 1000, probes: 1, clock });
    breaker.trip();
    clock.t = 1000;
    const probe = slot();
    expect(breaker.acquire(probe)).toBe(true);
    expect(probe.probe).toBe(true);
    expect(breaker.acquire(slot())).toBe(false);
    breaker.release(probe);
    expect(breaker.acquire(slot())).toBe(true);
  });
});

describe('circuitBreaker with its subscriber as the permit', () => {
  /** A handler whose calls the test answers by hand. */
  function driven() {
    const calls: Subject<GatewayResponse>[] = [];
    const handler: Handler = () => new Observable<GatewayResponse>((s) => {
      const subject = new Subject<GatewayResponse>();
      calls.push(subject);
      return subject.subscribe(s);
    });
    return { handler, calls };
  }

  it('frees no probe slot when a request it rejected is torn down', () => {
    const clock = manualClock();
    const breaker = new Breaker({ consecutiveFailures: 1, resetTimeout: 1000, probes: 1, probeSuccesses: 1, clock });
    breaker.trip();
    clock.t = 1000;
    const { handler, calls } = driven();
    const h = circuitBreaker(breaker)(handler);
    const probe: GatewayResponse[] = [];
    h(gatewayRequest()).subscribe((r) => probe.push(r));
    for (let i = 0; i < 2; i++) {
      const errors: unknown[] = [];
      h(gatewayRequest()).subscribe({ error: (e: unknown) => errors.push(e) }).unsubscribe();
      expect(errors[0]).toBeInstanceOf(CircuitOpenError);
    }
    expect(calls).toHaveLength(1);
    calls[0]!.next({ status: 200, headers: [], body: null });
    expect(probe).toHaveLength(1);
    expect(breaker.state).toBe('closed');
  });

  it('settles each request on its own: a failure after another request\'s success still counts', () => {
    const breaker = new Breaker({ consecutiveFailures: 1, clock: manualClock() });
    const { handler, calls } = driven();
    const h = circuitBreaker(breaker)(handler);
    h(gatewayRequest()).subscribe({ error: () => {} });
    h(gatewayRequest()).subscribe({ error: () => {} });
    calls[0]!.next({ status: 200, headers: [], body: null });
    expect(breaker.state).toBe('closed');
    calls[1]!.error(new BadGatewayError('refused'));
    expect(breaker.state).toBe('open');
  });
});
