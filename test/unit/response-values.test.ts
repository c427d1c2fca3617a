import { describe, expect, it } from 'vitest';
import { copyResponseHeaders } from '../../lib/upstream/response-head.ts';

/**
 * copyResponseHeaders reuses the text of a value whose bytes repeat at the
 * same position of the head (lib/upstream/response-head.ts `valueText`):
 * whatever the sequence of heads, the strings must be what
 * `toString('latin1')` gives.
 */

/** A head as undici hands it over: names and values as views of one read buffer. */
function rawHead(pairs: readonly (readonly [string, Buffer])[]): { raw: Buffer[]; read: Buffer } {
  const parts = pairs.flatMap(([n, v]) => [Buffer.from(n, 'latin1'), v]);
  const read = Buffer.concat(parts);
  const raw: Buffer[] = [];
  let at = 0;
  for (const p of parts) {
    raw.push(read.subarray(at, at + p.length));
    at += p.length;
  }
  return { raw, read };
}

function expected(pairs: readonly (readonly [string, Buffer])[]): string[] {
  return pairs.flatMap(([n, v]) => [n, v.toString('latin1')]);
}

/** A small deterministic random source (the cases repeat run to run). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe('response header values across responses', () => {
  it('are the bytes as latin1 text, for 3,000 heads mixing repeated, changed, long and non-ASCII values', () => {
    const random = lcg(7);
    const pool = [
      Buffer.from('application/json'), Buffer.from('application/jsoN'), Buffer.from('max-age=60'), Buffer.from(''),
      Buffer.from([0xe9, 0x74, 0xe9]), Buffer.from('x'.repeat(128)), Buffer.from('x'.repeat(129)), Buffer.from('1024'), Buffer.from('1025'),
    ];
    const pick = (): Buffer => (random() < 0.8 ? pool[Math.floor(random() * pool.length)]! : Buffer.from(String(Math.floor(random() * 1e6))));
    // Each position keeps its value from head to head, and now and then changes (to a near one, often).
    const current = Array.from({ length: 40 }, pick);
    for (let r = 0; r < 3_000; r++) {
      const count = 1 + Math.floor(random() * 40); // past the 32 cached positions too
      const pairs: [string, Buffer][] = [];
      for (let k = 0; k < count; k++) {
        if (random() < 0.15) current[k] = pick();
        pairs.push([`x-h${k}`, current[k]!]);
      }
      const { raw } = rawHead(pairs);
      const headers: string[] = [];
      copyResponseHeaders(raw, headers);
      expect(headers).toEqual(expected(pairs));
    }
  });

  it('do not change when the read buffer of an earlier head is reused for other bytes', () => {
    // Enough heads for the position to keep one (it keeps a value after a few misses in a row at most every 32nd).
    const heads = Array.from({ length: 40 }, () => rawHead([['content-type', Buffer.from('application/json')]]));
    for (const head of heads) copyResponseHeaders(head.raw, []);
    // The sockets' buffers of those heads now hold other bytes, same length.
    for (const head of heads) head.read.write('content-typetext/html;charse', 'latin1');
    const other = rawHead([['content-type', Buffer.from('text/html;charse')]]);
    const headers: string[] = [];
    copyResponseHeaders(other.raw, headers);
    expect(headers).toEqual(['content-type', 'text/html;charse']);
  });
});
