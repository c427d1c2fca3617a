import { describe, expect, it } from 'vitest';
import { Inflight } from '../../lib/stages/cache/inflight.ts';

describe('Inflight keys', () => {
  it('holds the same keys as a Map through leads and settles in any order, past growth', () => {
    const inflight = new Inflight<number>();
    const model = new Map<string, (v: number | null) => void>();
    let seed = 7;
    const random = () => ((seed = Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32;
    for (let step = 0; step < 20_000; step++) {
      // Few distinct keys at first (collisions, re-leads), up to ~300 held at once later (growth).
      const key = `GET /bench?r=${Math.floor(random() * (step < 5000 ? 40 : 600))}`;
      if (random() < 0.55 && !model.has(key)) model.set(key, inflight.lead(key));
      else if (model.has(key)) {
        model.get(key)!(step);
        model.delete(key);
      }
      if (step % 97 === 0) for (const k of model.keys()) expect(inflight.has(k)).toBe(true);
      expect(inflight.size).toBe(model.size);
      expect(inflight.has(key)).toBe(model.has(key));
    }
  });

  it('calls the waiters of each key with that key\'s value only', () => {
    const inflight = new Inflight<string>();
    const settles = new Map<string, (v: string | null) => void>();
    const got: string[] = [];
    for (let i = 0; i < 200; i++) settles.set(`k${i}`, inflight.lead(`k${i}`));
    for (let i = 0; i < 200; i += 3) inflight.join(`k${i}`, (v) => got.push(`k${i}=${v}`));
    for (const [k, settle] of settles) settle(`v-${k}`);
    expect(got).toEqual(Array.from({ length: 67 }, (_, j) => `k${j * 3}=v-k${j * 3}`));
    expect(inflight.size).toBe(0);
    expect(inflight.has('k0')).toBe(false);
  });

  it('keeps the newer leader when a key is led again before the first settles', () => {
    const inflight = new Inflight<string>();
    const first = inflight.lead('k');
    const second = inflight.lead('k');
    const got: unknown[] = [];
    inflight.join('k', (v) => got.push(v));
    first('old');
    expect(inflight.has('k')).toBe(true);
    second('new');
    expect(got).toEqual(['new']);
    expect(inflight.has('k')).toBe(false);
  });

  it('throws when joining a key nobody leads', () => {
    expect(() => new Inflight().join('nobody', () => {})).toThrow(/no leader/);
  });
});
