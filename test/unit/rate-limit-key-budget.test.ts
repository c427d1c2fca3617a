import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gcraRule } from '../../lib/stages/rate-limit/gcra.ts';
import { KeyBudget, MemoryRateLimitStore } from '../../lib/stages/rate-limit/memory-store.ts';

/**
 * The memory stores of a YAML gateway (one per bucket id) share one budget of
 * keys: its count is always what they hold together, never past `max`, and
 * a store spending it forgets its own keys before another store's.
 */

describe('KeyBudget', () => {
  it('counts exactly the keys its stores hold, never more than max, through admissions, sweeps, evictions and closes', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('consume' as const), store: fc.nat(2), key: fc.nat(9), rule: fc.nat(1) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 3000 }) }),
      fc.record({ kind: fc.constant('close' as const), store: fc.nat(2) }),
    );
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 80 }), (max, ops) => {
      let t = 0;
      const clock = { now: () => t };
      const budget = new KeyBudget(max);
      const stores = [0, 1, 2].map(() => new MemoryRateLimitStore({ clock, budget }));
      const rules = [gcraRule(1, 1000), gcraRule(2, 2000, 1)];
      for (const o of ops) {
        if (o.kind === 'advance') t += o.ms;
        else if (o.kind === 'close') {
          // A reload retires a store once no request uses it; a later build makes a new one for its id.
          stores[o.store]!.close();
          stores[o.store] = new MemoryRateLimitStore({ clock, budget });
        }
        else stores[o.store]!.consume(`k${o.key}`, rules[o.rule]!);
        const held = [...budget.stores].reduce((n, s) => n + s.size, 0);
        expect(budget.count).toBe(held);
        expect(budget.count).toBeLessThanOrEqual(max);
      }
    }));
  });

  it('takes the key to forget from the store holding the most', () => {
    const clock = { now: () => 0 };
    const budget = new KeyBudget(3);
    const [quiet, busy] = [new MemoryRateLimitStore({ clock, budget }), new MemoryRateLimitStore({ clock, budget })];
    const rule = gcraRule(1, 60_000);
    quiet.consume('victim', rule);
    for (const k of ['a', 'b', 'c']) busy.consume(k, rule);
    expect([quiet.size, busy.size]).toEqual([1, 2]);
    expect(quiet.consume('victim', rule).allowed).toBe(false);
    expect(busy.consume('a', rule).allowed).toBe(true);
  });

  it('with maxKeys alone, keeps a store to its own budget as before', () => {
    const store = new MemoryRateLimitStore({ clock: { now: () => 0 }, maxKeys: 2 });
    const rule = gcraRule(1, 60_000);
    for (const k of ['a', 'b', 'c']) store.consume(k, rule);
    expect(store.size).toBe(2);
    expect(store.consume('a', rule).allowed).toBe(true);
    expect(store.consume('c', rule).allowed).toBe(false);
  });
});
