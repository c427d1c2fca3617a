import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GradientLimit, type GradientConfig } from '../../lib/stages/adaptive-concurrency/gradient.ts';

const config: GradientConfig = { initialLimit: 20, minLimit: 3, maxLimit: 200, windowMs: 100, minRttWindowMs: 30_000, buffer: 0.1 };

interface Model { now: number; held: number }
interface Real { limit: GradientLimit; now: { t: number } }

class Acquire implements fc.Command<Model, Real> {
  check = () => true;
  run(m: Model, r: Real): void {
    const room = r.limit.inFlight < Math.floor(r.limit.limit);
    expect(r.limit.tryAcquire()).toBe(room);
    if (room) m.held++;
    expect(r.limit.inFlight).toBe(m.held);
  }
  toString = () => 'acquire';
}
class Release implements fc.Command<Model, Real> {
  check = (m: Readonly<Model>) => m.held > 0;
  run(m: Model, r: Real): void {
    r.limit.release();
    m.held--;
    expect(r.limit.inFlight).toBe(m.held);
  }
  toString = () => 'release';
}
class Sample implements fc.Command<Model, Real> {
  constructor(readonly rtt: number) {}
  check = () => true;
  run(_m: Model, r: Real): void {
    r.limit.sample(this.rtt, r.now.t);
    expect(r.limit.limit).toBeGreaterThanOrEqual(config.minLimit);
    expect(r.limit.limit).toBeLessThanOrEqual(config.maxLimit);
  }
  toString = () => `sample(${this.rtt})`;
}
class Advance implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  run(m: Model, r: Real): void {
    m.now += this.ms;
    r.now.t += this.ms;
  }
  toString = () => `advance(${this.ms})`;
}

describe('GradientLimit (adaptive concurrency core, virtual clock)', () => {
  it('admits exactly while in flight is under the limit, and keeps the limit within [minLimit, maxLimit]', () => {
    fc.assert(fc.property(fc.commands<Model, Real>([
      fc.constant(new Acquire()),
      fc.constant(new Release()),
      fc.integer({ min: 1, max: 1000 }).map((ms) => new Sample(ms)),
      fc.integer({ min: 1, max: 500 }).map((ms) => new Advance(ms)),
    ], { maxCommands: 200 }), (cmds) => {
      fc.modelRun(() => {
        const now = { t: 0 };
        return { model: { now: 0, held: 0 }, real: { limit: new GradientLimit(config, 0), now } };
      }, cmds);
    }), { numRuns: 200 });
  });

  it('grows while latency stays at its baseline, and shrinks to the minimum once it doubles and stays so', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 200 }), (base) => {
      const g = new GradientLimit(config, 0);
      let t = 0;
      const windows = (n: number, rtt: number): void => {
        for (let i = 0; i < n; i++) {
          t += config.windowMs;
          g.sample(rtt, t);
        }
      };
      windows(3, base);
      const steady = g.limit;
      windows(20, base);
      expect(g.limit).toBeGreaterThanOrEqual(steady);
      windows(200, base * 4);
      expect(g.limit).toBeLessThan(steady);
    }));
  });
});
