import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry, CacheRecord } from '../../lib/stages/cache/entry.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';

const MAX = 2_000;

/** What was stored last under each key (a delete removes it), and the injected clock's time. */
interface Model {
  now: number;
  /** Records the store lost to eviction (it must have counted at least as many). */
  vanished: number;
  /** False when the bound is far above anything stored: then nothing may vanish. */
  mayEvict: boolean;
  entries: Map<string, { value: number; bodySize: number; expiresAt: number }>;
}

interface Real {
  store: MemoryCacheStore;
  clock: { now(): number };
}

function record(value: number, bodySize: number): CacheEntry {
  return {
    kind: 'entry', status: 200 + (value % 100), statusText: undefined, headers: ['x-value', String(value)], vary: [],
    body: bodySize < 0 ? null : new BufferedBody([Buffer.alloc(bodySize, value % 256)]),
    storedAt: value, initialAge: 0, freshUntil: value + 1, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

/** The record read back is exactly the one stored: head, numbers and every body byte. */
function expectRecord(got: CacheRecord | undefined, value: number, bodySize: number): void {
  expect(got).toMatchObject({ kind: 'entry', status: 200 + (value % 100), headers: ['x-value', String(value)], storedAt: value });
  const body = (got as CacheEntry).body;
  if (bodySize < 0) expect(body).toBeNull();
  else expect(Buffer.concat(body!.chunks as Uint8Array[])).toEqual(Buffer.alloc(bodySize, value % 256));
}

/** After every command: the bound holds, and nothing is held that the model does not have. */
function invariants(m: Model, r: Real): void {
  expect(r.store.bytes).toBeLessThanOrEqual(r.store.maxBytes);
  expect(r.store.size).toBeLessThanOrEqual(m.entries.size);
  if (r.store.size === 0) expect(r.store.bytes).toBe(0);
}

class SetCommand implements fc.Command<Model, Real> {
  constructor(readonly key: string, readonly value: number, readonly bodySize: number, readonly ttl: number, readonly readBack: boolean) {}
  check = (): boolean => true;
  run(m: Model, r: Real): void {
    r.store.set(this.key, record(this.value, this.bodySize), this.ttl);
    m.entries.set(this.key, { value: this.value, bodySize: this.bodySize, expiresAt: m.now + this.ttl });
    if (this.bodySize >= r.store.maxBytes) {
      // larger than the whole bound: refused, and the key's older record is gone too
      expect(r.store.get(this.key)).toBeUndefined();
      m.entries.delete(this.key);
    } else if (this.readBack) {
      expectRecord(r.store.get(this.key), this.value, this.bodySize);
    }
    invariants(m, r);
  }
  toString = (): string => `set(${this.key}, ${this.value}, body ${this.bodySize}, ttl ${this.ttl}${this.readBack ? ', read back' : ''})`;
}

class GetCommand implements fc.Command<Model, Real> {
  constructor(readonly key: string) {}
  check = (): boolean => true;
  run(m: Model, r: Real): void {
    const e = m.entries.get(this.key);
    const got = r.store.get(this.key);
    if (e === undefined || e.expiresAt <= m.now) {
      expect(got).toBeUndefined();
      m.entries.delete(this.key);
    } else if (got === undefined) {
      // evicted to make room: counted as such
      m.vanished++;
      expect(m.mayEvict).toBe(true);
      expect(r.store.evictions).toBeGreaterThanOrEqual(m.vanished);
      m.entries.delete(this.key);
    } else {
      expectRecord(got, e.value, e.bodySize);
    }
    invariants(m, r);
  }
  toString = (): string => `get(${this.key})`;
}

class DeleteCommand implements fc.Command<Model, Real> {
  constructor(readonly key: string) {}
  check = (): boolean => true;
  run(m: Model, r: Real): void {
    r.store.delete(this.key);
    m.entries.delete(this.key);
    expect(r.store.get(this.key)).toBeUndefined();
    invariants(m, r);
  }
  toString = (): string => `delete(${this.key})`;
}

class AdvanceCommand implements fc.Command<Model, Real> {
  constructor(readonly ms: number) {}
  check = (): boolean => true;
  run(m: Model): void {
    m.now += this.ms;
  }
  toString = (): string => `advance(${this.ms})`;
}

// Keys of different lengths, one of them non-ASCII; bodies up to past the bound.
const key = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', '/k?x=1', 'ключ-☃');
const commands = fc.commands<Model, Real>([
  // Up to 1,700 bytes fits the bound with its head, key and index bytes; from 2,000 it cannot.
  fc.tuple(key, fc.nat(1_000), fc.oneof(fc.integer({ min: -1, max: 1_700 }), fc.integer({ min: MAX, max: 2_100 })), fc.integer({ min: 1, max: 50 }), fc.boolean())
    .map(([k, v, s, t, b]) => new SetCommand(k, v, s, t, b)),
  fc.tuple(key, fc.nat(1_000), fc.integer({ min: -1, max: 300 }), fc.integer({ min: 1, max: 50 }), fc.boolean())
    .map(([k, v, s, t, b]) => new SetCommand(k, v, s, t, b)),
  key.map((k) => new GetCommand(k)),
  key.map((k) => new DeleteCommand(k)),
  fc.integer({ min: 1, max: 30 }).map((ms) => new AdvanceCommand(ms)),
], { maxCommands: 80 });

function setup(slabBytes: number, maxBytes = MAX): () => { model: Model; real: Real } {
  return () => {
    const model: Model = { now: 0, vanished: 0, mayEvict: maxBytes === MAX, entries: new Map() };
    const clock = { now: () => model.now };
    return { model, real: { store: new MemoryCacheStore({ maxBytes, slabBytes, clock }), clock } };
  };
}

describe('MemoryCacheStore against a map of what was stored', () => {
  it('returns exactly the last record stored under a key, or nothing once it is deleted, expired or evicted, within maxBytes', () => {
    fc.assert(fc.property(commands, (cmds) => fc.modelRun(setup(1024 * 1024), cmds)), { numRuns: 300 });
  });

  it('does the same when records span slabs (64-byte slabs)', () => {
    fc.assert(fc.property(commands, (cmds) => fc.modelRun(setup(64), cmds)), { numRuns: 300 });
  });

  it('loses nothing when nothing has to go (a bound far above what is stored)', () => {
    fc.assert(
      fc.property(commands, (cmds) => {
        fc.modelRun(setup(64, 1024 * 1024), cmds);
      }),
      { numRuns: 200 },
    );
  });

  it('finds every key among thousands (the index grows and deletes keep probe runs intact)', () => {
    const store = new MemoryCacheStore({ clock: { now: () => 0 } });
    for (let i = 0; i < 5_000; i++) store.set(`/items/${i}`, record(i, i % 50), 60_000);
    for (let i = 0; i < 5_000; i += 3) store.delete(`/items/${i}`);
    for (let i = 0; i < 5_000; i++) {
      if (i % 3 === 0) expect(store.get(`/items/${i}`)).toBeUndefined();
      else expectRecord(store.get(`/items/${i}`), i, i % 50);
    }
    expect(store.size).toBe(5_000 - 1_667);
    expect(store.evictions).toBe(0);
  });
});

describe('MemoryCacheStore eviction', () => {
  it('keeps a record read since it was stored when the log wraps, and drops the oldest unread one', () => {
    const store = new MemoryCacheStore({ maxBytes: 1_000, clock: { now: () => 0 } });
    for (const k of ['a', 'b']) store.set(k, record(1, 250), 60_000);
    store.get('a');
    store.set('c', record(2, 250), 60_000);
    expect(store.evictions).toBe(1);
    expect(store.get('b')).toBeUndefined();
    expect(store.get('a')).toBeDefined();
    expect(store.get('c')).toBeDefined();
  });

  it('leaves a body already read intact while later stores overwrite its place in the log', () => {
    const store = new MemoryCacheStore({ maxBytes: 4_000, slabBytes: 512, clock: { now: () => 0 } });
    store.set('k', record(7, 900), 60_000);
    const got = store.get('k');
    for (let i = 0; i < 50; i++) store.set(`other-${i}`, record(9, 700), 60_000);
    expectRecord(got, 7, 900);
    expect(store.evictions).toBeGreaterThan(0);
  });

  it('answers repeated hits with the record the first one decoded, until the key is stored again', () => {
    const store = new MemoryCacheStore({ clock: { now: () => 0 } });
    store.set('k', record(1, 100), 60_000);
    const before = store.bytes;
    const first = store.get('k');
    expect(store.get('k')).toBe(first);
    expect(store.bytes).toBeGreaterThan(before);
    store.set('k', record(2, 100), 60_000);
    expect(store.bytes).toBe(before);
    expectRecord(store.get('k'), 2, 100);
    expectRecord(first, 1, 100);
  });

  it('allocates its slabs as it fills, not up front', () => {
    const store = new MemoryCacheStore({ maxBytes: 64 * 1024, slabBytes: 8 * 1024, clock: { now: () => 0 } });
    expect(store.slabCount).toBe(0);
    store.set('a', record(1, 100), 60_000);
    expect(store.slabCount).toBe(1);
    for (let i = 0; i < 200; i++) store.set(`k${i}`, record(i, 1_000), 60_000);
    expect(store.slabCount).toBe(8);
    expect(store.bytes).toBeLessThanOrEqual(64 * 1024);
  });
});
