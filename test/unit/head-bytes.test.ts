import fc from 'fast-check';
import type { HttpResponse } from 'uWebSockets.js';
import { describe, expect, it } from 'vitest';
import { HeadBytes } from '../../lib/server/head-bytes.ts';
import { writeHead } from '../../lib/server/response-head.ts';
import { Recorder } from '../support/head-recorder.ts';

/**
 * A cache entry's stored headers go out as lines made once per decoded
 * entry (head-bytes.ts, docs/cache-hit.md, eighth round, part 2). Every
 * response written with a `HeadBytes` must put on the wire exactly the
 * bytes the writer sends for the same list without one: the first write
 * (nothing made yet), the second (making them), later ones (copying them),
 * and responses whose list a later stage changed (the lines must not be
 * used then).
 */

function written(headers: string[], head: HeadBytes | undefined, id = 'id-1'): { wire: string; contentLength: string | undefined | null } {
  const r = new Recorder();
  const contentLength = writeHead(r as unknown as HttpResponse, { status: 200, headers, body: null, head }, '0.4ms', id); // null: refused
  return { wire: r.wire.toString('latin1'), contentLength };
}

const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,16}$/);
const value = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('', 'caf\u00e9', '\u20ac1', 'a=b; Path=/'));
const name = fc.oneof(token, fc.constantFrom('set-cookie', 'set-cookie', 'content-length', 'date', 'x-request-id', 'x-caf\u00e9'));
const pairs = fc.array(fc.tuple(name, value), { maxLength: 10 }).map((p) => p.flat());

/** What a stage after the cache may do to a response's list. */
type Edit = (list: string[]) => string[];
const edits: Record<string, Edit> = {
  'appends headers': (l) => [...l, 'ratelimit-limit', '10', 'x-extra', 'caf\u00e9'],
  'replaces a stored value': (l) => (l.length > 0 ? [l[0]!, `${l[1]!}x`, ...l.slice(2)] : l),
  'drops the first stored header': (l) => l.slice(2),
  'inserts before the stored headers': (l) => ['access-control-allow-origin', '*', ...l],
  'adds a content-length and an x-request-id': (l) => [...l, 'content-length', '7', 'x-request-id', 'mine'],
  'copies the strings into equal new ones': (l) => l.map((s) => ` ${s}`.slice(1)),
};

describe('HeadBytes', () => {
  it('writes the bytes the writer sends without it, for every write of a stored list and whatever is appended after it', () => {
    fc.assert(fc.property(pairs, pairs, fc.constantFrom('id-1', 'r\u00e9q'), (stored, extra, id) => {
      const head = new HeadBytes(stored);
      for (let n = 0; n < 4; n++) {
        // Each write of a hit: the stored list copied, per-hit headers after it (replay's x-cache and age).
        const list = [...stored, 'x-cache', 'HIT', 'age', String(n), ...extra];
        expect(written(list, head, id)).toEqual(written(list, undefined, id));
      }
    }), { numRuns: 300 });
  });

  it('makes the lines on the second write and copies them on later ones', () => {
    const stored = ['content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-length', '12', 'x-v', ''];
    const head = new HeadBytes(stored);
    written([...stored, 'x-cache', 'HIT'], head);
    expect(head.bytes).toBeNull();
    written([...stored, 'x-cache', 'HIT'], head);
    expect(head.bytes?.toString('latin1')).toBe('text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-v: ');
    expect(head.contentLength).toBe('12');
    const out = written([...stored, 'x-cache', 'HIT', 'age', '3'], head);
    expect(out.wire).toBe('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nset-cookie: a=1\r\nset-cookie: b=2\r\nx-v: \r\n'
      + 'x-cache: HIT\r\nage: 3\r\nx-gateway-response-time: 0.4ms\r\nx-request-id: id-1\r\n');
    expect(out.contentLength).toBe('12');
  });

  for (const [what, edit] of Object.entries(edits)) {
    it(`writes the list as it is when a later stage ${what}`, () => {
      fc.assert(fc.property(pairs, (stored) => {
        const head = new HeadBytes(stored);
        for (let n = 0; n < 3; n++) written([...stored, 'x-cache', 'HIT'], head);
        const list = edit([...stored, 'x-cache', 'HIT']);
        expect(written(list, head)).toEqual(written(list, undefined));
        // And the stored list still goes out as before afterwards.
        expect(written([...stored, 'x-cache', 'HIT'], head)).toEqual(written([...stored, 'x-cache', 'HIT'], undefined));
      }), { numRuns: 150 });
    });
  }

  it('keeps the stored x-request-id and content-length when the lines are copied', () => {
    const stored = ['x-request-id', 'upstream-1', 'content-length', '5', 'etag', '"e"'];
    const head = new HeadBytes(stored);
    for (let n = 0; n < 3; n++) {
      const out = written([...stored, 'x-cache', 'HIT'], head, 'edge-9');
      expect(out.wire).not.toContain('edge-9');
      expect(out.contentLength).toBe('5');
    }
    expect(head.bytes).not.toBeNull();
  });

  it('never makes lines for stored headers that cannot go as one block, and writes them as before', () => {
    const stored = ['x-n', 5 as unknown as string];
    const head = new HeadBytes(stored);
    // Refused, nothing written (review RR2 #4: uWS threw on the number, and the process ended).
    for (let n = 0; n < 3; n++) expect(written([...stored, 'x-cache', 'HIT'], head)).toEqual({ wire: '', contentLength: null });
    expect(head.bytes).toBeNull();
    const big = ['set-cookie', 'a'.repeat(20_000)];
    const large = new HeadBytes(big);
    for (let n = 0; n < 3; n++) expect(written([...big, 'x-cache', 'HIT'], large)).toEqual(written([...big, 'x-cache', 'HIT'], undefined));
    expect(large.bytes).toBeNull();
  });
});
