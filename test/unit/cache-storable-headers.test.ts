import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HOP_BY_HOP, connectionTokens } from '../../lib/headers.ts';
import { storableHeaders } from '../../lib/stages/cache/entry.ts';

/** What storableHeaders gave before it skipped the per-header lookups (one push per kept header). */
function reference(headers: readonly string[]): string[] {
  let connection: string | undefined;
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'connection') connection = connection === undefined ? headers[i + 1] : `${connection}, ${headers[i + 1]}`;
  const named = connectionTokens(connection);
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (HOP_BY_HOP.has(name) || name === 'age' || named?.has(name) === true) continue;
    out.push(name, headers[i + 1]!);
  }
  return out;
}

// Every name left out, names of the same lengths that are kept, and upper-case forms (kept: lists hold lower-case names).
const name = fc.constantFrom(...HOP_BY_HOP, 'age', 'ags', 'tx', 'te2', 'upgradE', 'Connection', 'x-hop', 'date', 'content-type', 'cache-control', 'etag', 'x-connection');
const value = fc.constantFrom('1', 'close', 'x-hop', 'keep-alive, x-hop', 'etag', '');

describe('the headers a stored response keeps', () => {
  it('are those the per-header filter keeps, in order, in a new array', () => {
    fc.assert(fc.property(fc.array(fc.tuple(name, value), { maxLength: 10 }), (pairs) => {
      const headers = pairs.flat();
      const out = storableHeaders(headers);
      expect(out).toEqual(reference(headers));
      expect(out).not.toBe(headers);
    }), { numRuns: 2000 });
  });

  it('leave out a hop-by-hop header or age that comes last', () => {
    for (const last of [...HOP_BY_HOP, 'age']) {
      expect(storableHeaders(['content-type', 'text/plain', 'date', 'x', last, 'v'])).toEqual(['content-type', 'text/plain', 'date', 'x']);
    }
  });

  it('are a copy when nothing is left out: changing it leaves the response\'s list alone', () => {
    const headers = ['content-type', 'text/plain', 'etag', '"1"'];
    const out = storableHeaders(headers);
    out.push('x-cache', 'MISS');
    expect(headers).toEqual(['content-type', 'text/plain', 'etag', '"1"']);
  });
});
