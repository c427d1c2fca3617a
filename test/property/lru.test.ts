import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LruBytes } from '../../lib/stages/cache/lru.ts';

const MAX = 100;

/** The model: entries from least to most recently used, each with its size and expiry. */
interface Model {
  now: number;
  entries: Array<{ key: string; value: number; size: number; expiresAt: number }>;
}

interface Real {
  lru: LruBytes<number>;
}

function bytes(m: Model): number {
  return m.entries.reduce((n, e) => n + e.size, 0);
}

class SetCommand implements fc.Command<Model, Real> {
  constructor(readonly key: string, readonly value: number, readonly size: number, readonly ttl: number) {}
  check = (): boolean => true;
  run(m: Model, r: Real): void {
    const stored = r.lru.set(this.key, this.value, this.size, m.now + this.ttl);
    m.entries = m.entries.filter((e) => e.key !== this.key);
    expect(stored).toBe(this.size <= MAX);
    if (this.size <= MAX) {
      m.entries.push({ key: this.key, value: this.value, size: this.size, expiresAt: m.now + this.ttl });
      while (bytes(m) > MAX) m.entries.shift();
    }
    expect(r.lru.bytes).toBe(bytes(m));
    expect(r.lru.keys()).toEqual(m.entries.map((e) => e.key));
  }
  toString = (): string => `set(${this.key}, ${this.value}, size ${this.size}, ttl ${this.ttl})`;
}

class GetCommand implements fc.Command<Model, Real> {
  constructor(readonly key: string) {}
  check = (): boolean => true;
  run(m: Model, r: Real): void {
    const i = m.entries.findIndex((e) => e.key === this.key);
    let expected: number | undefined;
    if (i >= 0) {
      const [e] = m.entries.splice(i, 1);
      if (e!.expiresAt > m.now) {
        m.entries.push(e!);
        expected = e!.value;
      }
    }
    expect(r.lru.get(this.key, m.now)).toBe(expected);
    expect(r.lru.bytes).toBe(bytes(m));
    expect(r.lru.bytes).toBeLessThanOrEqual(MAX);
  }
  toString = (): string => `get(${this.key})`;
}

class AdvanceCommand implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = (): boolean => true;
  run(m: Model): void {
    m.now += this.ms;
  }
  toString = (): string => `advance(${this.ms})`;
}

const key = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const commands = fc.commands<Model, Real>([
  fc.tuple(key, fc.integer(), fc.integer({ min: 1, max: 120 }), fc.integer({ min: 1, max: 50 }))
    .map(([k, v, s, t]) => new SetCommand(k, v, s, t)),
  key.map((k) => new GetCommand(k)),
  fc.integer({ min: 1, max: 30 }).map((ms) => new AdvanceCommand(ms)),
], { maxCommands: 60 });

describe('LruBytes', () => {
  it('behaves like a recency-ordered list bounded by bytes with expiry', () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        fc.modelRun(() => ({ model: { now: 0, entries: [] }, real: { lru: new LruBytes<number>(MAX) } }), cmds);
      }),
      { numRuns: 300 },
    );
  });

  it('evicts from the least recently used end when a replaced key grows', () => {
    const lru = new LruBytes<string>(MAX);
    lru.set('a', 'a', 40, 1_000);
    lru.set('b', 'b', 40, 1_000);
    lru.set('a', 'A', 70, 1_000);
    expect(lru.keys()).toEqual(['a']);
    expect(lru.bytes).toBe(70);
  });
});
