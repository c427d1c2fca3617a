import fc from 'fast-check';
import type { HttpResponse } from 'uWebSockets.js';
import { describe, expect, it } from 'vitest';
import { writeHead } from '../../lib/server/response-head.ts';
import { Recorder } from '../support/head-recorder.ts';

/**
 * `writeHead` takes the leading lines of a head from the last one it wrote
 * line by line when they are the same strings (last-head.ts): a forwarded
 * response repeats its upstream's head, value strings included. Every head
 * of a run, each one made from the last by a stage-like edit, must go out
 * as the bytes a call per header wrote.
 */

const SKIP = new Set(['content-length', 'date', 'transfer-encoding', 'connection', 'keep-alive']);

function reference(headers: readonly string[], responseTime: string, requestId: string): Buffer {
  const r = new Recorder();
  r.writeStatus('200 OK');
  let hasId = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (SKIP.has(name)) continue;
    if (name === 'x-request-id') hasId = true;
    const value = headers[i + 1]!;
    // eslint-disable-next-line no-control-regex
    r.writeHeader(name, /[^\x00-\x7f]/.test(value) ? Buffer.from(value, 'latin1') : value);
  }
  r.writeHeader('x-gateway-response-time', responseTime);
  if (!hasId) r.writeHeader('x-request-id', requestId);
  return r.wire;
}

function lastLength(headers: readonly string[]): string | undefined {
  let length: string | undefined;
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-length') length = headers[i + 1];
  return length;
}

function write(headers: string[], requestId: string): { wire: Buffer; contentLength: string | undefined | null } {
  const r = new Recorder();
  const contentLength = writeHead(r as unknown as HttpResponse, { status: 200, headers, body: null }, '0.3ms', requestId); // null: refused
  return { wire: r.wire, contentLength };
}

/** A new string with `s`'s characters (another object: `===` still holds, as for two values undici decoded apart). */
const copy = (s: string): string => (' ' + s).slice(1);

const name = fc.oneof(fc.stringMatching(/^[a-z][a-z0-9-]{0,14}$/), fc.constantFrom('content-length', 'date', 'x-request-id', 'connection', 'caf\u00e9', 'content-type'));
const value = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.constantFrom('', '1024', 'caf\u00e9'), fc.string({ minLength: 200, maxLength: 400 }));

/** What happens to the list between two responses: what an upstream or a stage does to a head. */
const edit = fc.oneof(
  fc.constant({ kind: 'same' as const }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), value }),
  fc.record({ kind: fc.constant('copy' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), name, value }),
  fc.record({ kind: fc.constant('remove' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), name, value }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function apply(list: string[], e: { kind: string; at?: number; name?: string; value?: string }): string[] {
  const next = [...list];
  const pairs = next.length / 2;
  const at = pairs === 0 ? 0 : (e.at ?? 0) % pairs;
  switch (e.kind) {
    case 'value': if (pairs > 0) next[2 * at + 1] = e.value!; break;
    case 'copy': if (pairs > 0) next[2 * at + 1] = copy(next[2 * at + 1]!); break;
    case 'insert': next.splice(2 * at, 0, e.name!, e.value!); break;
    case 'remove': if (pairs > 0) next.splice(2 * at, 2); break;
    case 'append': next.push(e.name!, e.value!); break;
    case 'truncate': next.length = 2 * at; break;
  }
  return next;
}

describe('writeHead with the last head\'s lines', () => {
  it('writes every head of a run of edited heads as a call per header did, with its content-length', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(name, value), { maxLength: 20 }),
      fc.array(edit, { minLength: 1, maxLength: 12 }),
      (pairs, edits) => {
        let list = pairs.flat();
        for (const e of [{ kind: 'same' }, { kind: 'same' }, ...edits]) {
          list = apply(list, e);
          const { wire, contentLength } = write(list, 'id-7');
          // A written line with CR, LF or NUL: the head refused, nothing written, the next ones as before (review RR2 #4).
          // eslint-disable-next-line no-control-regex
          if (list.some((v, i) => i % 2 === 1 && !SKIP.has(list[i - 1]!) && /[\r\n\0]/.test(v))) {
            expect([wire.length, contentLength]).toEqual([0, null]);
            continue;
          }
          expect(wire.toString('latin1')).toBe(reference(list, '0.3ms', 'id-7').toString('latin1'));
          expect(contentLength).toBe(lastLength(list));
        }
      },
    ), { numRuns: 300 });
  });

  it('takes a length and a date that change from the kept lines, and writes a value that changed', () => {
    const type = 'application/json';
    const cache = 'max-age=60';
    const a = ['content-type', type, 'date', 'Sun, 29 Nov 2026 17:00:00 GMT', 'cache-control', cache, 'content-length', '10'];
    const b = ['content-type', type, 'date', 'Sun, 29 Nov 2026 17:00:01 GMT', 'cache-control', cache, 'content-length', '12345'];
    const c = ['content-type', type, 'date', 'x', 'cache-control', 'no-store', 'content-length', '7', 'x-request-id', 'up-1'];
    for (const list of [a, a, b, c, c, a, b]) {
      const { wire, contentLength } = write(list, 'id-9');
      expect(wire.toString('latin1')).toBe(reference(list, '0.3ms', 'id-9').toString('latin1'));
      expect(contentLength).toBe(lastLength(list));
    }
  });

  it('keeps the first line\'s name when a later head matches none of the kept lines', () => {
    const a = ['x-first', 'one', 'x-second', 'two'];
    const other = ['date', 'd'];
    for (const list of [a, a, other, other, other, a, a]) {
      expect(write(list, 'id-1').wire.toString('latin1')).toBe(reference(list, '0.3ms', 'id-1').toString('latin1'));
    }
  });
});
