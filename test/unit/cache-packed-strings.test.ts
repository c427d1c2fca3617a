import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import { pack, unpack } from '../../lib/stages/cache/packed.ts';

function entry(headers: string[], vary: string[], statusText: string | undefined, body: string | null): CacheEntry {
  return {
    kind: 'entry', status: 200, statusText, headers, vary,
    body: body === null ? null : new BufferedBody([Buffer.from(body)]),
    storedAt: 1, initialAge: 0, freshUntil: 2, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

const bodyText = (e: CacheEntry): string | null => (e.body === null ? null : Buffer.concat(e.body.chunks as Uint8Array[]).toString());

/** The strings of a packed entry are decoded one by one (packed.ts, decodeLines): each must come back whole, in its place. */
describe('a packed entry decoded string by string', () => {
  const cases: [string, CacheEntry][] = [
    ['empty values and names next to each other', entry(['x-a', '', '', 'v', 'x-b', ''], [], undefined, 'body')],
    ['values outside ASCII (two- and three-byte UTF-8) and long ones', entry(['x-name', 'café ☃ ü', 'cache-control', 'public, max-age=600, stale-while-revalidate=30'], [], undefined, '{}')],
    ['vary names and a status text after the headers', entry(['content-type', 'application/json', 'vary', 'accept, origin'], ['accept', 'origin'], 'Fine Thanks', 'x')],
    ['a status text alone', entry([], [], 'Only Text', null)],
    ['an empty status text alone', entry([], [], '', null)],
    ['vary names alone', entry([], ['accept-language'], undefined, null)],
    ['a body full of newlines right after the strings', entry(['content-type', 'text/plain'], [], undefined, '\n\nline\n\n')],
    ['an empty last value before a body that starts with a newline', entry(['x-empty', ''], [], undefined, '\nrest')],
  ];
  for (const [name, e] of cases) {
    it(`gives back ${name}`, () => {
      const back = unpack(pack(e)) as CacheEntry;
      expect(back.headers).toEqual(e.headers);
      expect(back.vary).toEqual(e.vary);
      expect(back.statusText).toBe(e.statusText);
      expect(bodyText(back)).toBe(bodyText(e));
    });
  }
});
