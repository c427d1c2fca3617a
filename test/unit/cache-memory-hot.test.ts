import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry, CacheRecord } from '../../lib/stages/cache/entry.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';

function record(value: number, bodySize = 100): CacheEntry {
  return {
    kind: 'entry', status: 200, statusText: undefined, headers: ['x-value', String(value)], vary: [],
    body: new BufferedBody([Buffer.alloc(bodySize, value % 256)]),
    storedAt: value, initialAge: 0, freshUntil: value + 1, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

const valueOf = (r: CacheRecord | undefined): string | undefined => (r?.kind === 'entry' ? r.headers[1] : undefined);

/**
 * A key read once is then found by the store's map of decoded records, not
 * in the log: these are the ways that map could hand out a record the key
 * no longer holds (its slot freed, then taken by another key).
 */
describe('MemoryCacheStore hits after the first (found by key, without the log)', () => {
  it('misses a key whose decoded record was evicted, even when another key now has its slot', () => {
    const store = new MemoryCacheStore({ maxBytes: 2_000, clock: { now: () => 0 } });
    store.set('a', record(1), 60_000);
    expect(valueOf(store.get('a'))).toBe('1');
    expect(valueOf(store.get('a'))).toBe('1');
    // Fill the bound until 'a' has gone (its second chance spent), then read the newest key.
    let i = 0;
    while (store.get('a') !== undefined && i < 100) {
      for (let j = 0; j < 4; j++) store.set(`k${i++}`, record(100 + i, 300), 60_000);
    }
    expect(store.get('a')).toBeUndefined();
    const last = `k${i - 1}`;
    expect(valueOf(store.get(last))).toBe(String(100 + i));
    expect(store.get('a')).toBeUndefined();
  });

  it('misses a deleted key, and finds the record stored under it again', () => {
    const store = new MemoryCacheStore({ clock: { now: () => 0 } });
    store.set('a', record(1), 60_000);
    store.get('a');
    store.delete('a');
    store.set('b', record(2), 60_000); // takes the freed slot
    expect(store.get('a')).toBeUndefined();
    expect(valueOf(store.get('b'))).toBe('2');
    store.set('a', record(3), 60_000);
    expect(valueOf(store.get('a'))).toBe('3');
    expect(valueOf(store.get('a'))).toBe('3');
    expect(valueOf(store.get('b'))).toBe('2');
  });

  it('misses a key past its ttl, and an overwritten key gives its new record', () => {
    let now = 0;
    const store = new MemoryCacheStore({ clock: { now: () => now } });
    store.set('a', record(1), 1_000);
    store.get('a');
    now = 1_000;
    expect(store.get('a')).toBeUndefined();
    store.set('c', record(4), 60_000); // the freed slot again
    expect(store.get('a')).toBeUndefined();
    store.set('c', record(5), 60_000);
    expect(valueOf(store.get('c'))).toBe('5');
    store.set('c', record(6), 60_000);
    expect(valueOf(store.get('c'))).toBe('6');
  });

  it('returns the bytes it counted for the decoded record to zero once every key is gone', () => {
    const store = new MemoryCacheStore({ clock: { now: () => 0 } });
    for (let i = 0; i < 50; i++) store.set(`/items/${i}`, record(i), 60_000);
    for (let i = 0; i < 50; i++) store.get(`/items/${i}`);
    for (let i = 0; i < 50; i++) store.delete(`/items/${i}`);
    expect(store.size).toBe(0);
    expect(store.bytes).toBe(0);
    for (let i = 0; i < 50; i++) expect(store.get(`/items/${i}`)).toBeUndefined();
  });
});
