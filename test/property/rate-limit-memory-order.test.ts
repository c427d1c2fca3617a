import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gcraRule } from '../../lib/stages/rate-limit/gcra.ts';
import { MemoryRateLimitStore } from '../../lib/stages/rate-limit/memory-store.ts';

/**
 * Which keys a memory rate-limit store holds, against a plain model: a Map
 * in admission order, at most two expired keys forgotten from the front per
 * check (the key being checked stepped past), the front forgotten past
 * maxKeys. The store reads its front through one live iterator instead of a
 * new one per check (a new one walked every deleted slot left at the front:
 * 9-73 µs per new key in a flood into 100,000 keys); a front it forgot, a
 * key moved to the back, a sweep and a close must leave it reading the same
 * key the model does. A forgotten key shows as a fresh budget: a held key
 * within its window is refused where a forgotten one is admitted.
 */

const EMISSION_US = 1_000_000; // one request a second: gcraRule(1, 1000) and gcraRule(2, 2000, 3)

class Model {
  readonly tats = new Map<string, number>();
  constructor(private readonly max: number) {}

  consume(key: string, now: number, burst: number): boolean {
    const tats = this.tats;
    const stored = tats.get(key);
    if (tats.size !== 1 || stored === undefined) {
      let n = 0;
      for (const k of [...tats.keys()]) {
        if (n++ >= 2 || tats.get(k)! > now) break;
        if (k !== key) tats.delete(k);
      }
    }
    const tat = stored === undefined || stored < now ? now : stored;
    if (tat + EMISSION_US - now > EMISSION_US * burst) return false;
    tats.delete(key);
    tats.set(key, tat + EMISSION_US);
    if (stored === undefined && tats.size > this.max) tats.delete(tats.keys().next().value!);
    return true;
  }
}

describe('MemoryRateLimitStore, the keys it holds', () => {
  it('admits, refuses and forgets exactly as the ordered-Map model, through floods past maxKeys, sweeps and clears', () => {
    const op = fc.oneof(
      { weight: 6, arbitrary: fc.record({ kind: fc.constant('consume' as const), key: fc.nat(4), burst: fc.constantFrom(1, 3) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('flood' as const), n: fc.integer({ min: 1, max: 12 }) }) },
      { weight: 2, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 1500 }) }) },
      { weight: 1, arbitrary: fc.constant({ kind: 'close' as const }) },
    );
    fc.assert(fc.property(fc.integer({ min: 1, max: 8 }), fc.array(op, { maxLength: 60 }), (max, ops) => {
      let t = 1_000;
      let fresh = 0;
      const store = new MemoryRateLimitStore({ clock: { now: () => t }, maxKeys: max });
      let model = new Model(max);
      const rules = new Map([[1, gcraRule(1, 1000)], [3, gcraRule(2, 2000, 3)]]);
      const check = (key: string, burst = 1): void => {
        expect(store.consume(key, rules.get(burst)!).allowed).toBe(model.consume(key, t * 1000, burst));
        expect(store.size).toBe(model.tats.size);
      };
      for (const o of ops) {
        if (o.kind === 'advance') t += o.ms;
        else if (o.kind === 'close') {
          store.close();
          model = new Model(max);
        } else if (o.kind === 'flood') for (let i = 0; i < o.n; i++) check(`f${fresh++}`);
        else check(`k${o.key}`, o.burst);
      }
      // Whatever each holds now: a held key is refused, a forgotten one admitted.
      for (let k = 0; k < 5; k++) check(`k${k}`);
    }), { numRuns: 1000 });
  });

  it('forgets the oldest key, not one it has just moved to the back (a live front key admitted within its burst)', () => {
    const store = new MemoryRateLimitStore({ clock: { now: () => 1_000 }, maxKeys: 2 });
    const [burst, one] = [gcraRule(2, 2000, 3), gcraRule(1, 1000)];
    for (const key of ['a', 'b', 'a', 'c']) expect(store.consume(key, burst).allowed).toBe(true); // a moved back; c forgets b
    expect(store.consume('a', one).allowed).toBe(false); // a is held: refused
    expect(store.consume('b', one).allowed).toBe(true); // b was forgotten: a fresh budget
  });
});
