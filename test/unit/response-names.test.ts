import { util } from 'undici';
import { describe, expect, it } from 'vitest';
import { copyResponseHeaders } from '../../lib/upstream/response-head.ts';

/**
 * copyResponseHeaders reuses the name of the same bytes at the same position
 * of the last head (lib/upstream/response-head.ts `nameText`): whatever the
 * sequence of heads, each name must be what undici's `headerNameToString`
 * gives for its bytes (lower case; well-known names interned).
 */

/** A head as undici hands it over: names and values as views of one read buffer. */
function rawHead(pairs: readonly (readonly [Buffer, string])[]): Buffer[] {
  const parts = pairs.flatMap(([n, v]) => [n, Buffer.from(v, 'latin1')]);
  const read = Buffer.concat(parts);
  const raw: Buffer[] = [];
  let at = 0;
  for (const p of parts) {
    raw.push(read.subarray(at, at + p.length));
    at += p.length;
  }
  return raw;
}

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('response header names across responses', () => {
  it('are undici\'s lower-case names of their bytes, for 3,000 heads mixing repeated, changed, cased and long names', () => {
    const random = lcg(11);
    const pool = ['Content-Type', 'content-type', 'CONTENT-TYPE', 'Content-Typf', 'Date', 'X-Custom', 'x-custoM', 'Cache-Control', 'uWebSockets', 'X-' + 'a'.repeat(62), 'X-' + 'b'.repeat(63), 'Set-Cookie', 'Vary']
      .map((n) => Buffer.from(n, 'latin1'));
    const pick = (): Buffer => (random() < 0.85 ? pool[Math.floor(random() * pool.length)]! : Buffer.from(`X-N${Math.floor(random() * 1e4)}`, 'latin1'));
    const current = Array.from({ length: 40 }, pick);
    for (let r = 0; r < 3_000; r++) {
      const count = 1 + Math.floor(random() * 40); // past the 32 cached positions too
      const pairs: [Buffer, string][] = [];
      for (let k = 0; k < count; k++) {
        if (random() < 0.15) current[k] = pick();
        pairs.push([current[k]!, k === 0 ? '' : 'v']);
      }
      const headers: string[] = [];
      copyResponseHeaders(rawHead(pairs), headers);
      // No hop-by-hop name in the pool: every header is copied, in order.
      expect(headers.filter((_, i) => i % 2 === 0)).toEqual(pairs.map(([n]) => util.headerNameToString(n)));
    }
  });

  it('do not change when the read buffer of an earlier head is reused for other bytes', () => {
    const heads = Array.from({ length: 40 }, () => rawHead([[Buffer.from('X-Kept', 'latin1'), 'v']]));
    for (const raw of heads) copyResponseHeaders(raw, []);
    // Their read buffers now hold other bytes: the kept name must be a copy.
    for (const raw of heads) raw[0]!.fill(0x79);
    const other: string[] = [];
    copyResponseHeaders(rawHead([[Buffer.from('yyyyyy', 'latin1'), 'v']]), other);
    expect(other[0]).toBe('yyyyyy');
    const headers: string[] = [];
    copyResponseHeaders(rawHead([[Buffer.from('X-Kept', 'latin1'), 'v']]), headers);
    expect(headers[0]).toBe('x-kept');
  });
});

