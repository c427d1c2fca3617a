import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry, CacheRecord } from '../../lib/stages/cache/entry.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';

// Review RA of c34a537: a record moved to the next slab could run past the end of a store whose last
// slab is short (maxBytes not a multiple of the slab size): the store threw, or looped for ever in Slabs.write.

function entry(tag: number, size: number, chunks = 1): CacheEntry {
  const bufs: Buffer[] = [];
  let left = size;
  for (let c = 0; c < chunks && left > 0; c++) {
    const n = c === chunks - 1 ? left : Math.ceil(left / 2);
    bufs.push(Buffer.alloc(n, tag % 251));
    left -= n;
  }
  return {
    kind: 'entry', status: 200, statusText: undefined, headers: ['x-tag', String(tag)], vary: [],
    body: size === 0 ? null : new BufferedBody(bufs),
    storedAt: tag, initialAge: 0, freshUntil: tag + 1, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

const bodyOf = (r: CacheRecord | undefined): Buffer | null | undefined =>
  r === undefined || r.kind !== 'entry' ? undefined : r.body === null ? null : Buffer.concat(r.body.chunks as Uint8Array[]);

describe('a memory store whose last slab is short', () => {
  it('stores and reads back 600 KB entries in a 100,000,000-byte store (1 MiB slabs, the last 385,280 B)', () => {
    const store = new MemoryCacheStore({ maxBytes: 100_000_000, clock: { now: () => 0 } });
    for (let i = 0; i < 400; i++) {
      store.set(`/img/${i}`, entry(i, 600_000), 1e12);
      for (const j of [i, i - 3, i - 50]) {
        if (j < 0) continue;
        const body = bodyOf(store.get(`/img/${j}`));
        if (body !== undefined) expect(body!.equals(Buffer.alloc(600_000, j % 251))).toBe(true);
      }
    }
    expect(store.size).toBeGreaterThan(80);
  });

  it('never returns another record\'s bytes, in stores of every shape (model-based)', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('set' as const), key: fc.integer({ min: 0, max: 12 }), size: fc.oneof(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 400, max: 5_000 })), chunks: fc.integer({ min: 1, max: 3 }), ttl: fc.integer({ min: 1, max: 100 }) }),
      fc.record({ k: fc.constant('get' as const), key: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ k: fc.constant('del' as const), key: fc.integer({ min: 0, max: 12 }) }),
      fc.record({ k: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 50 }) }),
    );
    for (const [maxBytes, slabBytes] of [[1_100, 512], [1_000, 256], [5_000, 1_024], [20_000, 1_024]] as const) {
      fc.assert(fc.property(fc.array(op, { maxLength: 150 }), (ops) => {
        let t = 0;
        let tag = 0;
        const store = new MemoryCacheStore({ maxBytes, slabBytes, clock: { now: () => t } });
        const model = new Map<string, { size: number; tag: number; exp: number }>();
        for (const o of ops) {
          if (o.k === 'tick') t += o.ms;
          else if (o.k === 'set') { store.set(`/k/${o.key}`, entry(++tag, o.size, o.chunks), o.ttl); model.set(`/k/${o.key}`, { size: o.size, tag, exp: t + o.ttl }); }
          else if (o.k === 'del') { store.delete(`/k/${o.key}`); model.delete(`/k/${o.key}`); }
          else {
            const got = store.get(`/k/${o.key}`);
            if (got === undefined) continue;
            const m = model.get(`/k/${o.key}`);
            expect(m).toBeDefined();
            expect(t).toBeLessThan(m!.exp);
            expect(bodyOf(got)).toEqual(m!.size === 0 ? null : Buffer.alloc(m!.size, m!.tag % 251));
          }
        }
      }), { numRuns: 200 });
    }
  });

  it('keeps as many 520 KiB entries as before in the default 64 MiB store (review RA: skipping to the next slab halved it)', () => {
    const store = new MemoryCacheStore({ clock: { now: () => 0 } });
    for (let i = 0; i < 400; i++) store.set(`/img/${i}`, entry(i, 520 * 1024), 1e12);
    // 125 before c34a537, 64 with every record moved to a slab's start
    expect(store.size).toBeGreaterThan(110);
  });
});
