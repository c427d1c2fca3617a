import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HealthTracker } from '../../lib/upstream/health.ts';

/**
 * The reference: every probe outcome kept in a list, the state recomputed
 * from the window of probes since the last change. An instance goes DOWN
 * once the last `unhealthyAfter` probes since it came UP all failed, and UP
 * once the last `healthyAfter` probes since it went DOWN all succeeded.
 */
class Model {
  healthy = true;
  /** Outcomes since the last state change. */
  since: boolean[] = [];

  constructor(readonly unhealthyAfter: number, readonly healthyAfter: number) {}

  record(ok: boolean): boolean {
    this.since.push(ok);
    const need = this.healthy ? this.unhealthyAfter : this.healthyAfter;
    const wanted = !this.healthy; // the outcome that moves the state
    const tail = this.since.slice(-need);
    if (tail.length === need && tail.every((o) => o === wanted)) {
      this.healthy = !this.healthy;
      this.since = [];
      return true;
    }
    return false;
  }
}

interface Real {
  tracker: HealthTracker;
}

class Probe implements fc.Command<Model, Real> {
  constructor(readonly ok: boolean) {}
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    const changedModel = model.record(this.ok);
    const changedReal = real.tracker.record(this.ok);
    expect(changedReal).toBe(changedModel);
    expect(real.tracker.healthy).toBe(model.healthy);
  }
  toString(): string {
    return this.ok ? 'probe(ok)' : 'probe(fail)';
  }
}

/** A burst of identical probes, so runs reach the thresholds often. */
class Burst implements fc.Command<Model, Real> {
  constructor(readonly ok: boolean, readonly n: number) {}
  check(): boolean {
    return true;
  }
  run(model: Model, real: Real): void {
    for (let i = 0; i < this.n; i++) new Probe(this.ok).run(model, real);
  }
  toString(): string {
    return `burst(${this.ok ? 'ok' : 'fail'} x${this.n})`;
  }
}

const commands = [
  fc.boolean().map((ok) => new Probe(ok)),
  fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 6 })).map(([ok, n]) => new Burst(ok, n)),
];

describe('HealthTracker', () => {
  it('follows the model for any sequence of probes and any thresholds', () => {
    fc.assert(fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.integer({ min: 1, max: 5 }),
      fc.commands(commands, { maxCommands: 60 }),
      (unhealthyAfter, healthyAfter, cmds) => {
        fc.modelRun(
          () => ({ model: new Model(unhealthyAfter, healthyAfter), real: { tracker: new HealthTracker({ unhealthyAfter, healthyAfter }) } }),
          cmds,
        );
      },
    ), { numRuns: 300 });
  });

  it('defaults to two failures down and two successes up', () => {
    const t = new HealthTracker({});
    expect(t.healthy).toBe(true);
    expect(t.record(false)).toBe(false);
    expect(t.record(false)).toBe(true);
    expect(t.healthy).toBe(false);
    expect(t.record(true)).toBe(false);
    expect(t.record(true)).toBe(true);
    expect(t.healthy).toBe(true);
  });

  it('needs the failures in a row: a success in between starts the count again', () => {
    const t = new HealthTracker({ unhealthyAfter: 3 });
    for (const ok of [false, false, true, false, false]) t.record(ok);
    expect(t.healthy).toBe(true);
    expect(t.record(false)).toBe(true);
    expect(t.healthy).toBe(false);
  });

  it('goes down on the first failure with unhealthyAfter: 1 and up on the first success with healthyAfter: 1', () => {
    const t = new HealthTracker({ unhealthyAfter: 1, healthyAfter: 1 });
    expect(t.record(false)).toBe(true);
    expect(t.healthy).toBe(false);
    expect(t.record(false)).toBe(false);
    expect(t.record(true)).toBe(true);
    expect(t.healthy).toBe(true);
  });

  it.each([
    [{ unhealthyAfter: 0 }],
    [{ healthyAfter: 0 }],
    [{ unhealthyAfter: -1 }],
  ])('refuses thresholds below 1 (%j) with a TypeError', (options) => {
    expect(() => new HealthTracker(options)).toThrow(TypeError);
  });

  // Regression guard for code-form options: NaN passes a `< 1` check and would
  // leave an instance that can never change state.
  it('refuses a NaN threshold with a TypeError', () => {
    expect(() => new HealthTracker({ unhealthyAfter: Number.NaN })).toThrow(TypeError);
  });
});
