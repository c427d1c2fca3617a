import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { storableHeaders, withPair, type CacheEntry } from '../../lib/stages/cache/entry.ts';
import type { StoragePlan } from '../../lib/stages/cache/policy.ts';
import { acceptingRanges } from '../../lib/stages/cache/range.ts';
import { StoreTee } from '../../lib/stages/cache/tee.ts';

const headers = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'date', 'Sun, 29 Nov 2026 23:00:00 GMT', 'uwebsockets', '20', 'content-length', '1068'];

/** Heap bytes per call of `f`: the least over batches in which no collection ran (heapUsed only grew). */
function heapPerCall(f: () => unknown): number {
  const keep: unknown[] = new Array(1_000);
  let least = Infinity;
  for (let b = 0; b < 40; b++) {
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1_000; i++) keep[i] = f();
    const grown = (process.memoryUsage().heapUsed - before) / 1_000;
    if (grown > 0) least = Math.min(least, grown);
  }
  return least;
}

/** What a stored miss copies of its response's headers (docs/cache-memory.md, twelfth round). */
describe('the header lists a stored miss makes', () => {
  it('copies the headers with room for accept-ranges: adding it moves nothing (one backing store, not two)', () => {
    const out = acceptingRanges(storableHeaders(headers));
    expect(out).toEqual([...headers, 'accept-ranges', 'bytes']);
    // 144 B here (the list, 12 slots); a push onto slice's exact copy made 320 (a new store half again as large)
    expect(heapPerCall(() => acceptingRanges(storableHeaders(headers)))).toBeLessThan(200);
  });

  it('adds x-cache in a list of exactly its length', () => {
    const out = withPair(headers, 'x-cache', 'MISS');
    expect(out).toEqual([...headers, 'x-cache', 'MISS']);
    expect(headers).toHaveLength(10);
    // 144 B; the array literal with a spread it replaces grew as it went: 304
    expect(heapPerCall(() => withPair(headers, 'x-cache', 'MISS'))).toBeLessThan(200);
  });
});

const plan: StoragePlan = { freshness: { storedAt: 0, initialAge: 0, freshUntil: 1, staleWhileRevalidate: 0, staleIfError: 0 }, headers: [], vary: [] };

/** Streams `chunks` through a tee (storeCopies: the chunks are kept as they came); what was stored, and whether it was dropped. */
function through(chunks: Buffer[], limit = 1_024): { stored: CacheEntry | undefined; dropped: number; client: string } {
  let stored: CacheEntry | undefined;
  let dropped = 0;
  const tee = new StoreTee(new BufferedBody(chunks), limit, { stored: (e) => (stored = e), dropped: () => dropped++ }, { status: 200, headers: [], body: null }, plan, true);
  let client = '';
  tee.pipe({ write: (c) => ((client += Buffer.from(c).toString()), true), end: () => {} });
  return { stored, dropped, client };
}

describe('StoreTee keeps the first chunk on its own, a list from the second', () => {
  it('stores an empty body, one chunk, or several, as they came', () => {
    expect(through([]).stored!.body!.chunks).toEqual([]);
    const one = [Buffer.from('hello')];
    expect(through(one).stored!.body!.chunks[0]).toBe(one[0]);
    const three = [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')];
    const { stored, client } = through(three);
    expect(stored!.body!.chunks).toEqual(three);
    expect(stored!.body!.length).toBe(3);
    expect(client).toBe('abc');
  });

  it('drops the copy once past the limit, at the first chunk or a later one, and still streams every chunk', () => {
    for (const chunks of [[Buffer.from('toolong')], [Buffer.from('abc'), Buffer.from('def')], [Buffer.from('a'), Buffer.from('b'), Buffer.from('cdef')]]) {
      const { stored, dropped, client } = through(chunks, 4);
      expect(stored).toBeUndefined();
      expect(dropped).toBe(1);
      expect(client).toBe(Buffer.concat(chunks).toString());
    }
  });
});
