import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { Slabs } from '../../lib/stages/cache/slabs.ts';
import type { Slots } from '../../lib/stages/cache/slots.ts';

function entry(value: number, bodySize: number): CacheEntry {
  return {
    kind: 'entry', status: 200, statusText: undefined, headers: ['x-value', String(value)], vary: [],
    body: new BufferedBody([Buffer.alloc(bodySize, value % 256)]),
    storedAt: value, initialAge: 0, freshUntil: value + 1, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

/** The store's log and index, as the test reads them. */
const insides = (store: MemoryCacheStore): { slabs: Slabs; slots: Slots } => store as unknown as { slabs: Slabs; slots: Slots };

/** `set` packs a record straight into the log's slab (docs/cache-memory.md, twelfth round): it must lie in one. */
describe('a record that fits in a slab', () => {
  it('is written within one slab, and reads back whole', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 700 }), { minLength: 1, maxLength: 80 }), (sizes) => {
      const store = new MemoryCacheStore({ maxBytes: 4_096, slabBytes: 512, clock: { now: () => 0 } });
      const { slabs, slots } = insides(store);
      sizes.forEach((size, i) => {
        store.set(`k${i}`, entry(i, size), 60_000);
        for (let slot = 0; slot < slots.pos.length; slot++) {
          const pos = slots.pos[slot]!;
          if (pos < 0) continue;
          const at = pos % slabs.capacity;
          const len = slots.len[slot]!;
          // fails when records run across slab ends as before (a 64-byte header and key, then the packed record):
          // one that fits in a slab crosses an end only when skipping would have left more than a sixteenth of a slab unused
          if (len <= slabs.slabSize && Math.floor(at / 512) !== Math.floor((at + len - 1) / 512)) expect(512 - (at % 512)).toBeGreaterThan(512 / 16);
        }
        const got = store.get(`k${i}`) as CacheEntry | undefined;
        if (got !== undefined) expect(Buffer.concat(got.body!.chunks as Uint8Array[])).toEqual(Buffer.alloc(size, i % 256));
      });
    }), { numRuns: 200 });
  });
});

describe('Slabs.skipFor', () => {
  const slabs = new Slabs(1_000, 256); // capacity 1,000: slabs of 256, 256, 256 and 232
  it('skips to the next slab when a record that fits in one would cross its end, leaving at most a sixteenth of a slab', () => {
    expect(slabs.skipFor(200, 48)).toBe(0);
    expect(slabs.skipFor(248, 16)).toBe(8);
    expect(slabs.skipFor(256 + 240, 100)).toBe(16);
  });
  it('lets a record span two slabs rather than leave more than a sixteenth of a slab unused (review RA)', () => {
    expect(slabs.skipFor(256 + 200, 100)).toBe(0);
    expect(slabs.inOneSlab(256 + 200, 100)).toBe(false);
  });
  it('never skips a record past the end of a store whose last slab is short (review RA)', () => {
    // slab 2 ends at 768; the last slab holds 232 bytes, so 236 bytes moved to 768 would end at 1,004
    expect(slabs.skipFor(760, 236)).toBe(0);
    expect(slabs.skipFor(760, 232)).toBe(8);
  });
  it('lets a record larger than a slab span slabs, up to the log\'s end', () => {
    expect(slabs.skipFor(200, 300)).toBe(0);
    expect(slabs.skipFor(900, 300)).toBe(100);
  });
  it('skips to the log\'s end when the record would run past it, positions taken modulo the capacity', () => {
    expect(slabs.skipFor(960, 48)).toBe(40);
    expect(slabs.skipFor(1_000 + 248, 16)).toBe(8);
  });
});
