import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Breaker, type BreakerPermit, type BreakerState } from '../../lib/stages/circuit-breaker/breaker.ts';

/** The breaker settings a run draws. */
interface Settings {
  consecutiveFailures: number;
  failureRate: number;
  windowType: 'time' | 'count';
  windowSize: number;
  window: number;
  minimumCalls: number;
  slowCallDuration: number | null;
  resetTimeout: number;
  resetBackoff: number;
  maxResetTimeout: number;
  probes: number;
  probeSuccesses: number;
}

const settingsArb: fc.Arbitrary<Settings> = fc.record({
  consecutiveFailures: fc.integer({ min: 0, max: 4 }),
  failureRate: fc.constantFrom(0, 0.25, 0.5, 1),
  windowType: fc.constantFrom('time' as const, 'count' as const),
  windowSize: fc.integer({ min: 1, max: 6 }),
  window: fc.constantFrom(100, 1000),
  minimumCalls: fc.integer({ min: 1, max: 5 }),
  slowCallDuration: fc.constantFrom(null, 50, 100, 250),
  resetTimeout: fc.integer({ min: 0, max: 500 }),
  resetBackoff: fc.constantFrom(1, 2, 3),
  maxResetTimeout: fc.integer({ min: 0, max: 2000 }),
  probes: fc.integer({ min: 1, max: 3 }),
  probeSuccesses: fc.integer({ min: 1, max: 3 }),
});

interface ModelCall {
  epoch: number;
  probe: boolean;
  startedAt: number;
}

/**
 * The reference: the breaker as the issue describes it, written the obvious
 * way (every outcome kept in a list, windows recomputed from scratch).
 */
class Model {
  state: BreakerState = 'closed';
  epoch = 0;
  until = 0;
  opens = 0;
  inFlight = 0;
  successes = 0;
  consecutive = 0;
  records: { t: number; failed: boolean }[] = [];
  now = 0;
  calls: ModelCall[] = [];

  constructor(readonly s: Settings) {}

  look(): BreakerState {
    if (this.state === 'open' && this.now >= this.until) {
      this.state = 'half-open';
      this.epoch++;
      this.inFlight = 0;
      this.successes = 0;
    }
    return this.state;
  }

  acquire(): ModelCall | null {
    const state = this.look();
    if (state === 'closed') return { epoch: this.epoch, probe: false, startedAt: this.now };
    if (state === 'half-open' && this.inFlight < this.s.probes) {
      this.inFlight++;
      return { epoch: this.epoch, probe: true, startedAt: this.now };
    }
    return null;
  }

  finish(call: ModelCall, outcome: Outcome): void {
    if (call.epoch !== this.epoch) return;
    if (outcome === 'abort') {
      if (this.state === 'half-open') this.inFlight--;
      return;
    }
    const slow = this.s.slowCallDuration !== null && this.now - call.startedAt >= this.s.slowCallDuration;
    const failed = outcome === 'failure' || slow;
    if (this.state === 'closed') {
      this.records.push({ t: this.now, failed });
      this.consecutive = failed ? this.consecutive + 1 : 0;
      if (failed && this.trips()) this.open();
    } else if (this.state === 'half-open') {
      this.inFlight--;
      if (failed) this.open();
      else if (++this.successes >= this.s.probeSuccesses) this.close();
    }
  }

  retryAfter(): number {
    return this.look() === 'open' ? this.until - this.now : 0;
  }

  private trips(): boolean {
    const s = this.s;
    if (s.consecutiveFailures > 0 && this.consecutive >= s.consecutiveFailures) return true;
    if (s.failureRate === 0) return false;
    let inWindow: { failed: boolean }[];
    if (s.windowType === 'count') {
      inWindow = this.records.slice(-s.windowSize);
    } else {
      const width = s.window / 10;
      const current = Math.floor(this.now / width);
      inWindow = this.records.filter((r) => Math.floor(r.t / width) > current - 10);
    }
    const failures = inWindow.filter((r) => r.failed).length;
    return inWindow.length >= s.minimumCalls && failures / inWindow.length >= s.failureRate;
  }

  private open(): void {
    const { resetTimeout: r, resetBackoff: b, maxResetTimeout: m } = this.s;
    const timeout = r === 0 ? 0 : Math.min(Math.max(r, m), r * b ** this.opens);
    this.opens++;
    this.state = 'open';
    this.until = this.now + timeout;
    this.forget();
  }

  private close(): void {
    this.opens = 0;
    this.state = 'closed';
    this.forget();
  }

  private forget(): void {
    this.epoch++;
    this.records = [];
    this.consecutive = 0;
  }
}

type Outcome = 'success' | 'failure' | 'abort';

interface Real {
  clock: { t: number; now(): number };
  breaker: Breaker;
  permits: BreakerPermit[];
  /** Probe successes the real breaker was told of since it last turned half-open. */
  probeSuccesses: number;
}

function checkAgree(m: Model, r: Real): void {
  expect(r.breaker.state).toBe(m.look());
  expect(r.breaker.retryAfter()).toBe(m.retryAfter());
  // never more than N probes in flight while half-open
  expect(m.inFlight).toBeLessThanOrEqual(m.s.probes);
  const liveProbes = m.calls.filter((c) => c.probe && c.epoch === m.epoch).length;
  if (m.state === 'half-open') expect(liveProbes).toBeLessThanOrEqual(m.s.probes);
}

class StartCall implements fc.Command<Model, Real> {
  check = () => true;
  run(m: Model, r: Real): void {
    const permit = r.breaker.tryAcquire();
    const expected = m.acquire();
    expect(permit !== null).toBe(expected !== null);
    if (permit !== null && expected !== null) {
      // no call passes while OPEN
      expect(r.breaker.state).not.toBe('open');
      expect(permit.probe).toBe(expected.probe);
      r.permits.push(permit);
      m.calls.push(expected);
    }
    checkAgree(m, r);
  }
  toString = () => 'start';
}

class FinishCall implements fc.Command<Model, Real> {
  constructor(readonly pick: number, readonly outcome: Outcome) {}
  check = (m: Readonly<Model>) => m.calls.length > 0;
  run(m: Model, r: Real): void {
    const i = this.pick % m.calls.length;
    const [call] = m.calls.splice(i, 1);
    const [permit] = r.permits.splice(i, 1);
    const wasHalfOpen = r.breaker.state === 'half-open';
    if (this.outcome === 'success') r.breaker.success(permit!);
    else if (this.outcome === 'failure') r.breaker.failure(permit!);
    else r.breaker.release(permit!);
    const slow = m.s.slowCallDuration !== null && m.now - call!.startedAt >= m.s.slowCallDuration;
    if (wasHalfOpen && permit!.probe && call!.epoch === m.epoch && this.outcome === 'success' && !slow) r.probeSuccesses++;
    m.finish(call!, this.outcome);
    if (wasHalfOpen && r.breaker.state === 'closed') {
      // it closes only after the required probe successes
      expect(r.probeSuccesses).toBe(m.s.probeSuccesses);
    }
    checkAgree(m, r);
  }
  toString = () => `finish(${this.pick}, ${this.outcome})`;
}

class Advance implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  run(m: Model, r: Real): void {
    m.now += this.ms;
    r.clock.t += this.ms;
    checkAgree(m, r);
  }
  toString = () => `advance(${this.ms})`;
}

const commandsArb = fc.commands<Model, Real>([
  fc.constant(new StartCall()),
  fc.tuple(fc.nat(), fc.constantFrom<Outcome>('success', 'failure', 'failure', 'abort')).map(([i, o]) => new FinishCall(i, o)),
  // round steps too, so calls land exactly on slow-call and window-bucket boundaries
  fc.oneof(fc.constantFrom(10, 50, 100), fc.integer({ min: 1, max: 400 })).map((ms) => new Advance(ms)),
], { maxCommands: 200, size: 'medium' });

function setup(s: Settings) {
  return () => {
    const clock = { t: 0, now: () => clock.t };
    const breaker = new Breaker({ ...s, clock });
    const real: Real = { clock, breaker, permits: [], probeSuccesses: 0 };
    breaker.state$.subscribe((t) => {
      if (t.to === 'half-open') real.probeSuccesses = 0;
    });
    return { model: new Model(s), real };
  };
}

describe('Breaker against a reference model', () => {
  it('agrees with the model on every admission, state and retry-after, whatever the sequence', () => {
    fc.assert(fc.property(settingsArb, commandsArb, (s, cmds) => {
      fc.modelRun(setup(s), cmds);
    }), { numRuns: 300 });
  });

  it('opens on the failure rate over a count window only once the minimum calls are in', () => {
    const s: Settings = {
      consecutiveFailures: 0, failureRate: 0.5, windowType: 'count', windowSize: 4, window: 1000, minimumCalls: 4,
      slowCallDuration: null, resetTimeout: 100, resetBackoff: 1, maxResetTimeout: 100, probes: 1, probeSuccesses: 1,
    };
    const { real } = setup(s)();
    const settle = (ok: boolean) => {
      const p = real.breaker.tryAcquire()!;
      if (ok) real.breaker.success(p);
      else real.breaker.failure(p);
    };
    settle(false);
    settle(false);
    settle(false);
    expect(real.breaker.state).toBe('closed');
    settle(true);
    settle(false); // window: F F T F → 3/4
    expect(real.breaker.state).toBe('open');
  });

  it('forgets failures that slid out of the time window', () => {
    const s: Settings = {
      consecutiveFailures: 0, failureRate: 1, windowType: 'time', windowSize: 1, window: 1000, minimumCalls: 3,
      slowCallDuration: null, resetTimeout: 100, resetBackoff: 1, maxResetTimeout: 100, probes: 1, probeSuccesses: 1,
    };
    const { real } = setup(s)();
    const fail = () => real.breaker.failure(real.breaker.tryAcquire()!);
    fail();
    fail();
    real.clock.t = 1000; // both in bucket 0, which has left the window [100, 1100)
    fail();
    fail();
    expect(real.breaker.state).toBe('closed');
    real.clock.t = 1099;
    fail();
    expect(real.breaker.state).toBe('open');
  });
});
