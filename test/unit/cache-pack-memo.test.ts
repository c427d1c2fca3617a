import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { pack, packInto, TextMemo } from '../../lib/stages/cache/packed.ts';

function entry(headers: string[], vary: string[], statusText: string | undefined, body: string | null): CacheEntry {
  return {
    kind: 'entry', status: 200, statusText, headers, vary,
    body: body === null ? null : new BufferedBody([Buffer.from(body)]),
    storedAt: 1, initialAge: 0, freshUntil: 2, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

/** `packInto` with `memo`, as the memory store calls it: the bytes it wrote. */
function packedWith(memo: TextMemo, e: CacheEntry): Buffer {
  let out = Buffer.alloc(0);
  const n = packInto(e, (size) => (out = Buffer.alloc(size + 16, 0xee)), memo);
  return out.subarray(0, n);
}

// A few strings, so that consecutive entries often share some or all of them (by reference or only by value).
const word = fc.constantFrom('content-type', 'application/json', 'date', 'café ☃', '', 'x-a', 'accept', 'Fine', 'a\u0000b'.slice(0, 1));
const aRecord = fc.record({
  headers: fc.array(word, { maxLength: 6 }),
  vary: fc.array(word, { maxLength: 2 }),
  statusText: fc.option(word, { nil: undefined }),
  body: fc.option(fc.string({ maxLength: 8 }), { nil: null }),
  // the same strings as the entry before, as new arrays (what storableHeaders gives each miss)
  again: fc.boolean(),
});

/** The header text of a stored miss is reused when its strings are the last ones encoded (packed.ts, TextMemo). */
describe('packing with the last entry\'s text kept', () => {
  it('writes the bytes pack writes, entry after entry', () => {
    fc.assert(fc.property(fc.array(aRecord, { minLength: 1, maxLength: 40 }), (records) => {
      const memo = new TextMemo();
      let last: CacheEntry | null = null;
      for (const r of records) {
        const e: CacheEntry = r.again && last !== null
          ? entry([...last.headers], [...last.vary], last.statusText, r.body)
          : entry(r.headers, r.vary, r.statusText, r.body);
        expect(packedWith(memo, e).equals(pack(e))).toBe(true);
        last = e;
      }
    }), { numRuns: 300 });
  });

  // Each case fails if `matches` leaves out one of the three parts of the text, or compares only lengths.
  const cases: [string, CacheEntry, CacheEntry][] = [
    ['a header value that changed', entry(['date', 'Mon'], [], undefined, 'x'), entry(['date', 'Tue'], [], undefined, 'x')],
    ['a vary name that changed', entry(['vary', 'a'], ['accept'], undefined, null), entry(['vary', 'a'], ['origin'], undefined, null)],
    ['a status text that changed', entry(['x', 'y'], [], 'Fine', null), entry(['x', 'y'], [], 'Good', null)],
    ['a status text that went away', entry(['x', 'y'], [], 'Fine', null), entry(['x', 'y'], [], undefined, null)],
    ['a header moved into the vary names', entry(['a', 'b'], [], undefined, null), entry(['a'], ['b'], undefined, null)],
    ['a value of the same length in other characters', entry(['etag', '"aaaa"'], [], undefined, 'b'), entry(['etag', '"bbbb"'], [], undefined, 'b')],
  ];
  for (const [name, first, second] of cases) {
    it(`encodes again after ${name}`, () => {
      const memo = new TextMemo();
      packedWith(memo, first);
      expect(packedWith(memo, second).equals(pack(second))).toBe(true);
    });
  }

  it('serves entries stored one after the other whose headers differ in one value', () => {
    const store = new MemoryCacheStore({ maxBytes: 1024 * 1024 });
    const dates = ['Mon, 01 Jan 2024 00:00:00 GMT', 'Mon, 01 Jan 2024 00:00:01 GMT', 'Mon, 01 Jan 2024 00:00:01 GMT'];
    dates.forEach((d, i) => store.set(`k${i}`, entry(['content-type', 'text/plain', 'date', d], [], undefined, `body ${i}`), 60_000));
    dates.forEach((d, i) => {
      const got = store.get(`k${i}`) as CacheEntry;
      expect(got.headers).toEqual(['content-type', 'text/plain', 'date', d]);
      expect(Buffer.concat(got.body!.chunks as Uint8Array[]).toString()).toBe(`body ${i}`);
    });
  });
});
