import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { systemRuntime, type Runtime } from '../../lib/runtime.ts';
import { OutlierTracker } from '../../lib/upstream/outlier.ts';
import { Service } from '../../lib/upstream/service.ts';

interface Settings {
  instances: number;
  ejectAfter: number;
  ejectFor: number;
  maxEjectFor: number;
  panic: boolean;
  maxEjectionPercent: number;
  balancer: string;
}

const settingsArb: fc.Arbitrary<Settings> = fc.record({
  instances: fc.integer({ min: 1, max: 4 }),
  ejectAfter: fc.integer({ min: 1, max: 3 }),
  ejectFor: fc.constantFrom(0, 100, 1000),
  maxEjectFor: fc.constantFrom(100, 500, 4000),
  panic: fc.boolean(),
  maxEjectionPercent: fc.constantFrom(0, 25, 50, 100),
  balancer: fc.constantFrom('round-robin', 'random', 'least-request', 'p2c-ewma', 'hash'),
});

/**
 * The reference, written the obvious way: per instance the strikes and
 * ejections since its last success and the time it is out until (never
 * more than maxEjectionPercent of the instances out, one always allowed); a
 * pick may take any instance of the best tier: in rotation and untried, in
 * rotation, then (panic) out and untried, out. Which one of the tier is the
 * balancer's business.
 */
class Model {
  now = 0;
  next = 0;
  readonly strikes: number[];
  readonly ejections: number[];
  readonly until: number[];
  readonly origins: string[];

  constructor(readonly s: Settings) {
    this.strikes = Array.from({ length: s.instances }, () => 0);
    this.ejections = Array.from({ length: s.instances }, () => 0);
    this.until = Array.from({ length: s.instances }, () => -Infinity);
    this.origins = Array.from({ length: s.instances }, (_, i) => `http://10.0.0.${i + 1}:8080`);
  }

  out(i: number): boolean {
    return this.now < this.until[i]!;
  }

  fail(i: number): void {
    if (this.s.ejectFor === 0) return;
    if (++this.strikes[i]! < this.s.ejectAfter) return;
    const othersOut = this.origins.filter((_, k) => k !== i && this.out(k)).length;
    if (!this.out(i) && othersOut + 1 > Math.max(1, Math.floor(this.s.instances * this.s.maxEjectionPercent / 100))) {
      this.strikes[i] = this.s.ejectAfter - 1;
      return;
    }
    this.strikes[i] = 0;
    const length = Math.min(Math.max(this.s.ejectFor, this.s.maxEjectFor), this.s.ejectFor * 2 ** this.ejections[i]!);
    this.ejections[i]!++;
    this.until[i] = this.now + length;
  }

  succeed(i: number): void {
    this.strikes[i] = 0;
    this.ejections[i] = 0;
  }

  /** The instances a pick may return (empty: it must return none). */
  allowed(avoid: readonly string[]): number[] {
    const n = this.s.instances;
    if (n === 1) return this.s.panic || !this.out(0) ? [0] : [];
    const ranked: number[][] = [[], [], [], []];
    for (let i = 0; i < n; i++) ranked[(this.out(i) ? 2 : 0) + (avoid.includes(this.origins[i]!) ? 1 : 0)]!.push(i);
    if (ranked[0]!.length > 0) return ranked[0]!;
    if (ranked[1]!.length > 0) return ranked[1]!;
    if (!this.s.panic) return [];
    return ranked[2]!.length > 0 ? ranked[2]! : ranked[3]!;
  }
}

interface Real {
  clock: { t: number };
  service: Service;
}

class Fail implements fc.Command<Model, Real> {
  constructor(readonly i: number) {}
  check = (m: Readonly<Model>) => this.i < m.s.instances;
  run(m: Model, r: Real): void {
    m.fail(this.i);
    r.service.failed(r.service.upstreams[this.i]!);
  }
  toString = () => `fail(${this.i})`;
}

class Succeed implements fc.Command<Model, Real> {
  constructor(readonly i: number) {}
  check = (m: Readonly<Model>) => this.i < m.s.instances;
  run(m: Model, r: Real): void {
    m.succeed(this.i);
    r.service.upstreams[this.i]!.outlier.success();
  }
  toString = () => `succeed(${this.i})`;
}

class Pick implements fc.Command<Model, Real> {
  constructor(readonly tried: number[]) {}
  check = () => true;
  run(m: Model, r: Real): void {
    const avoid = this.tried.filter((i) => i < m.s.instances).map((i) => m.origins[i]!);
    const allowed = m.allowed(avoid).map((i) => m.origins[i]!);
    const picked = r.service.pick(avoid);
    if (allowed.length === 0) expect(picked).toBeUndefined();
    else expect(allowed).toContain(picked?.origin);
    // Never black-holed in panic mode; never an ejected instance while another is in rotation.
    if (m.s.panic) expect(picked).toBeDefined();
    const anyIn = m.origins.some((_, i) => !m.out(i));
    if (picked !== undefined && anyIn) expect(r.service.inRotation(picked)).toBe(true);
    for (let i = 0; i < m.s.instances; i++) expect(r.service.inRotation(r.service.upstreams[i]!)).toBe(!m.out(i));
  }
  toString = () => `pick(tried ${JSON.stringify(this.tried)})`;
}

class Advance implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = () => true;
  run(m: Model, r: Real): void {
    m.now += this.ms;
    r.clock.t += this.ms;
  }
  toString = () => `advance(${this.ms})`;
}

const instance = fc.integer({ min: 0, max: 3 });
const commandsArb = fc.commands<Model, Real>([
  instance.map((i) => new Fail(i)),
  instance.map((i) => new Succeed(i)),
  fc.uniqueArray(instance, { maxLength: 4 }).map((tried) => new Pick(tried)),
  fc.oneof(fc.constantFrom(50, 100, 1000), fc.integer({ min: 1, max: 5000 })).map((ms) => new Advance(ms)),
], { maxCommands: 120, size: 'medium' });

function manualRuntime(clock: { t: number }): Runtime {
  let seed = 7;
  // A fixed sequence, so a failing run repeats.
  const random = (): number => {
    seed = (seed * 16807) % 2147483647;
    return (seed - 1) / 2147483646;
  };
  return { ...systemRuntime, now: () => clock.t, random };
}

describe('passive ejection and panic in Service.pick', () => {
  it('follows the model for any sequence of failures, successes, picks and time', () => {
    fc.assert(fc.property(settingsArb, commandsArb, (s, cmds) => {
      fc.modelRun(() => {
        const model = new Model(s);
        const clock = { t: 0 };
        const service = new Service('model', {
          upstreams: model.origins,
          ejectAfter: s.ejectAfter,
          ejectFor: s.ejectFor,
          maxEjectFor: s.maxEjectFor,
          panic: s.panic,
          maxEjectionPercent: s.maxEjectionPercent,
          balancer: s.balancer,
          runtime: manualRuntime(clock),
        });
        return { model, real: { clock, service } };
      }, cmds);
    }), { numRuns: 300 });
  });

  // Found while writing the model: once every ejection was over, `pick` stopped
  // reading the clock and took an instance ejected long ago for one still out.
  it('puts an instance back in rotation for good once its ejection is over', () => {
    const clock = { t: 0 };
    const service = new Service('x', { upstreams: ['http://a:1', 'http://b:1'], balancer: 'round-robin', runtime: manualRuntime(clock) });
    service.failed(service.upstreams[0]!);
    expect([service.pick(), service.pick()].map((u) => u!.origin)).toEqual(['http://b:1', 'http://b:1']);
    clock.t = 10_000;
    expect([1, 2, 3, 4].map(() => service.pick()!.origin)).toEqual(['http://a:1', 'http://b:1', 'http://a:1', 'http://b:1']);
  });
});

describe('OutlierTracker', () => {
  const config = { ejectAfter: 1, ejectMs: 10_000, maxEjectMs: 35_000 };

  it('ejects on the first failure with ejectAfter: 1, for ejectFor, and lets the instance back once it is over', () => {
    const o = new OutlierTracker(config);
    expect(o.failure(1_000)).toBe(11_000);
    expect(o.ejected(10_999)).toBe(true);
    expect(o.ejected(11_000)).toBe(false);
  });

  it('doubles the ejection while the instance keeps failing without answering, up to the cap', () => {
    const o = new OutlierTracker(config);
    expect([0, 1, 2, 3].map((k) => o.failure(k * 100_000)! - k * 100_000)).toEqual([10_000, 20_000, 35_000, 35_000]);
  });

  it('forgets past ejections once the instance answers', () => {
    const o = new OutlierTracker(config);
    o.failure(0);
    o.failure(20_000);
    o.success();
    expect(o.failure(100_000)).toBe(110_000);
  });

  it('needs ejectAfter failures in a row, an answer in between starting the count again', () => {
    const o = new OutlierTracker({ ...config, ejectAfter: 2 });
    expect(o.failure(0)).toBeNull();
    o.success();
    expect(o.failure(1)).toBeNull();
    expect(o.failure(2)).toBe(10_002);
  });

  it('never ejects with ejectFor 0', () => {
    const o = new OutlierTracker({ ...config, ejectMs: 0 });
    expect(o.failure(0)).toBeNull();
    expect(o.ejected(0)).toBe(false);
  });
});
