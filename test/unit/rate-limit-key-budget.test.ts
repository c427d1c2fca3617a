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
  it('counts exactly the keys its stores hold, never more than max, and takes each key it forgets from a store holding the most, through admissions, sweeps, evictions and closes', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('consume' as const), store: fc.nat(2), key: fc.nat(9), rule: fc.nat(1) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 3000 }) }),
      fc.record({ kind: fc.constant('close' as const), store: fc.nat(2) }),
    );
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.array(op, { maxLength: 80 }), (max, ops) => {
      let t = 0;
      const clock = { now: () => t };
      const budget = new KeyBudget(max);
      // Each key the budget takes back: was its store one holding the most (the new key counted)?
      const spends: boolean[] = [];
      const store = (): MemoryRateLimitStore => {
        const s = new MemoryRateLimitStore({ clock, budget });
        const forget = s.forgetOldest.bind(s);
        s.forgetOldest = () => {
          spends.push(s.size === Math.max(...stores.map((x) => x.size)));
          forget();
        };
        return s;
      };
      const stores = [0, 1, 2].map(store);
      const rules = [gcraRule(1, 1000), gcraRule(2, 2000, 1)];
      for (const o of ops) {
        if (o.kind === 'advance') t += o.ms;
        else if (o.kind === 'close') {
          // A reload retires a store once no request uses it; a later build makes a new one for its id.
          stores[o.store]!.close();
          stores[o.store] = store();
        } else stores[o.store]!.consume(`k${o.key}`, rules[o.rule]!);
        const held = stores.reduce((n, s) => n + s.size, 0);
        expect(budget.count).toBe(held);
        expect(budget.count).toBeLessThanOrEqual(max);
        expect(spends).not.toContain(false);
      }
    }));
  });

  it('takes the key to forget from the store holding the most when the store adding one is below its share', () => {
    // Review RH, L3: the quiet store is below its share (max / stores), so the budget looks for the largest.
    const clock = { now: () => 0 };
    const budget = new KeyBudget(6);
    const [quiet, busy] = [new MemoryRateLimitStore({ clock, budget }), new MemoryRateLimitStore({ clock, budget })];
    const rule = gcraRule(1, 60_000);
    quiet.consume('victim', rule);
    for (const k of ['a', 'b', 'c', 'd', 'e']) busy.consume(k, rule); // full: 1 + 5
    quiet.consume('x', rule);
    expect([quiet.size, busy.size]).toEqual([2, 4]);
    expect(quiet.consume('victim', rule).allowed).toBe(false);
    expect(busy.consume('a', rule).allowed).toBe(true); // 'a' was forgotten: a fresh budget
  });

  it('does not take the key from a store at its share while another holds more (review RH, M1)', () => {
    // 3 stores, a share of 4 keys each: login holds 5, the flood 7; login's new client costs the flood a key.
    const clock = { now: () => 0 };
    const budget = new KeyBudget(12);
    const [login, flood] = [new MemoryRateLimitStore({ clock, budget }), new MemoryRateLimitStore({ clock, budget })];
    new MemoryRateLimitStore({ clock, budget }); // a third limited route, idle
    const rule = gcraRule(1, 60_000);
    for (const k of ['victim', 'l1', 'l2', 'l3', 'l4']) login.consume(k, rule);
    for (let i = 0; i < 7; i++) flood.consume(`f${i}`, rule); // 12: full
    expect([login.size, flood.size]).toEqual([5, 7]);
    login.consume('l5', rule);
    expect([login.size, flood.size]).toEqual([6, 6]);
    expect(login.consume('victim', rule).allowed).toBe(false);
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
