import fc from 'fast-check';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { BadGatewayError } from '../../lib/errors.ts';
import { retry } from '../../lib/stages/retry/retry.ts';
import { RetryBudget } from '../../lib/stages/retry/budget.ts';
import type { GatewayRequest, GatewayResponse } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

interface Settings {
  ratio: number;
  minRetries: number;
  minConcurrent: number;
  window: number;
}

const settingsArb: fc.Arbitrary<Settings> = fc.record({
  ratio: fc.constantFrom(0, 0.1, 0.2, 0.5, 1),
  minRetries: fc.integer({ min: 0, max: 4 }),
  minConcurrent: fc.integer({ min: 0, max: 3 }),
  window: fc.constantFrom(100, 1000, 10_000),
});

/** Every request and granted retry with its time; the window counted from scratch. */
class Model {
  now = 0;
  /** Granted retries not yet done. */
  active = 0;
  events: { t: number; retry: boolean }[] = [];
  constructor(readonly s: Settings) {}
  inWindow(): { requests: number; retries: number } {
    const width = this.s.window / 10;
    const current = Math.floor(this.now / width);
    const live = this.events.filter((e) => Math.floor(e.t / width) > current - 10);
    return { requests: live.filter((e) => !e.retry).length, retries: live.filter((e) => e.retry).length };
  }
  allowed(): number {
    return this.s.minRetries + this.s.ratio * this.inWindow().requests;
  }
}

interface Real {
  clock: { t: number; now(): number };
  budget: RetryBudget;
}

class Request implements fc.Command<Model, Real> {
  check = () => true;
  run(m: Model, r: Real): void {
    r.budget.request();
    m.events.push({ t: m.now, retry: false });
  }
  toString = () => 'request';
}

class Retry implements fc.Command<Model, Real> {
  check = () => true;
  run(m: Model, r: Real): void {
    const byConcurrency = m.active < m.s.minConcurrent;
    const expected = byConcurrency || m.inWindow().retries + 1 <= m.allowed();
    const granted = r.budget.tryRetry();
    expect(granted).toBe(expected);
    if (granted) {
      m.events.push({ t: m.now, retry: true });
      m.active++;
    }
    // a grant beyond the concurrency floor never takes the window past what
    // the budget allows (requests sliding out later may leave it over, but
    // then nothing more is granted)
    if (granted && !byConcurrency) expect(m.inWindow().retries).toBeLessThanOrEqual(m.allowed());
    expect(r.budget.window()).toEqual(m.inWindow());
    expect(r.budget.active).toBe(m.active);
  }
  toString = () => 'retry';
}

/** The attempt of a granted retry is over. */
class Done implements fc.Command<Model, Real> {
  check = (m: Readonly<Model>) => m.active > 0;
  run(m: Model, r: Real): void {
    m.active--;
    r.budget.retryDone();
    expect(r.budget.active).toBe(m.active);
  }
  toString = () => 'done';
}

class Advance implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  run(m: Model, r: Real): void {
    m.now += this.ms;
    r.clock.t += this.ms;
    expect(r.budget.window()).toEqual(m.inWindow());
  }
  toString = () => `advance(${this.ms})`;
}

const commandsArb = fc.commands<Model, Real>([
  fc.constant(new Request()),
  fc.constant(new Retry()),
  fc.constant(new Done()),
  fc.oneof(fc.constantFrom(10, 100, 1000), fc.integer({ min: 1, max: 3000 })).map((ms) => new Advance(ms)),
], { maxCommands: 200, size: 'medium' });

function request(): GatewayRequest {
  return gatewayRequest({ id: 'r' });
}

describe('RetryBudget', () => {
  it('grants a retry exactly when the window has room for it, whatever the sequence', () => {
    fc.assert(fc.property(settingsArb, commandsArb, (s, cmds) => {
      fc.modelRun(() => {
        const clock = { t: 0, now: () => clock.t };
        return { model: new Model(s), real: { clock, budget: new RetryBudget({ ...s, clock }) } };
      }, cmds);
    }), { numRuns: 200 });
  });

  it('keeps the retry operator within the budget when every upstream call fails', () => {
    fc.assert(fc.property(settingsArb, fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 5 }), (s, requests, attempts) => {
      const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
      scheduler.run(({ cold }) => {
        // No concurrency floor here: this bounds the ratio part alone.
        const budget = new RetryBudget({ ...s, minConcurrent: 0, window: '1h', clock: { now: () => scheduler.now() } });
        let calls = 0;
        const h = retry({ attempts, budget, base: 1, random: () => 0.5, scheduler })(() => {
          calls++;
          return cold<GatewayResponse>('-#', undefined, new BadGatewayError('down'));
        });
        for (let i = 0; i < requests; i++) h(request()).subscribe({ error: () => {} });
        scheduler.flush();
        const retries = calls - requests;
        expect(retries).toBeLessThanOrEqual(s.minRetries + s.ratio * requests);
        expect(retries).toBeLessThanOrEqual(requests * (attempts - 1));
        expect(budget.counts.retries).toBe(retries);
      });
    }), { numRuns: 100 });
  });

  it('never refuses a retry while fewer than minConcurrent granted retries are in flight, whatever the window', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.boolean(), { maxLength: 60 }), (minConcurrent, ops) => {
      const budget = new RetryBudget({ ratio: 0, minRetries: 0, minConcurrent, clock: { now: () => 0 } });
      let active = 0;
      for (const retry of ops) {
        if (retry) {
          const granted = budget.tryRetry();
          expect(granted).toBe(active < minConcurrent);
          if (granted) active++;
        } else if (active > 0) {
          budget.retryDone();
          active--;
        }
      }
    }), { numRuns: 200 });
  });
});
