import fc from 'fast-check';
import type { HttpResponse } from 'uWebSockets.js';
import { describe, expect, it } from 'vitest';
import { writeErrorHead, writeHead } from '../../lib/server/response-head.ts';
import { Recorder } from '../support/head-recorder.ts';

/**
 * `writeHead` hands uWS every header in one `writeHeader` call
 * (docs/performance-hot-path.md, fourth pass): the bytes on the wire must be
 * the ones a call per header wrote. A recording response turns calls into
 * bytes the way uWS 20.30 does: `name: value\r\n`, a string as UTF-8, bytes
 * as they are.
 */

const SKIP = new Set(['content-length', 'date', 'transfer-encoding', 'connection', 'keep-alive']);

/** What the writer sent before: one call per header, values outside ASCII as latin1 bytes, then the edge's two. */
function reference(status: string, headers: string[], responseTime: string, requestId: string): Buffer {
  const r = new Recorder();
  r.writeStatus(status);
  let hasId = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    if (SKIP.has(name)) continue;
    if (name === 'x-request-id') hasId = true;
    // eslint-disable-next-line no-control-regex
    r.writeHeader(name, /[^\x00-\x7f]/.test(value) ? Buffer.from(value, 'latin1') : value);
  }
  r.writeHeader('x-gateway-response-time', responseTime);
  if (!hasId) r.writeHeader('x-request-id', requestId);
  return r.wire;
}

function written(headers: string[], responseTime: string, requestId: string): { wire: Buffer; calls: number; contentLength: string | undefined | null } {
  const r = new Recorder();
  const contentLength = writeHead(r as unknown as HttpResponse, { status: 200, headers, body: null }, responseTime, requestId); // null: refused
  return { wire: r.wire, calls: r.calls.length, contentLength };
}

const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/);
// Values as undici hands them over (latin1: any char up to 0xff), and as a stage may set them (any char).
const value = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }), fc.constantFrom('', 'caf\u00e9', '\u20ac1'));

describe('writeHead', () => {
  it('writes the head a call per header wrote, in one writeHeader call', () => {
    const headers = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'date', 'Sun, 29 Nov 2026 07:00:00 GMT',
      'uwebsockets', '20', 'content-length', '1068', 'x-cache', 'HIT'];
    const out = written(headers, '0.3ms', 'abc-1');
    expect(out.wire.toString('latin1')).toBe(reference('200 OK', headers, '0.3ms', 'abc-1').toString('latin1'));
    expect(out.wire.toString('latin1')).toBe('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=60\r\n'
      + 'uwebsockets: 20\r\nx-cache: HIT\r\nx-gateway-response-time: 0.3ms\r\nx-request-id: abc-1\r\n');
    expect(out.calls).toBe(1);
    expect(out.contentLength).toBe('1068');
  });

  it('keeps a response\'s own x-request-id and adds none', () => {
    const headers = ['x-request-id', 'upstream-7', 'etag', '"a"'];
    const out = written(headers, '1.0ms', 'edge-1');
    expect(out.wire.equals(reference('200 OK', headers, '1.0ms', 'edge-1'))).toBe(true);
    expect(out.wire.toString('latin1')).not.toContain('edge-1');
  });

  it('writes the edge\'s two headers alone when the response has none', () => {
    const out = written([], '0.1ms', 'id-9');
    expect(out.wire.toString('latin1')).toBe('HTTP/1.1 200 OK\r\nx-gateway-response-time: 0.1ms\r\nx-request-id: id-9\r\n');
  });

  it('writes values outside ASCII as latin1 bytes and a client\'s UTF-8 request id as UTF-8, as before', () => {
    const headers = ['x-name', 'caf\u00e9', 'x-euro', '\u20ac'];
    const out = written(headers, '0.1ms', 'r\u00e9q');
    expect(out.wire.equals(reference('200 OK', headers, '0.1ms', 'r\u00e9q'))).toBe(true);
    expect(out.wire.includes(Buffer.from('x-request-id: r\u00c3\u00a9q', 'latin1'))).toBe(true);
  });

  it('refuses, writing nothing, a header that is not a string or holds CR, LF or NUL (review RR2 #4: uWS threw, or the response was split)', () => {
    // A stage in plain JS may push a number; uWS (like Buffer.from in the recorder) threw on it, through RxJS: the process ended.
    for (const headers of [['x-n', 5], [7, 'v'], ['x-a', 'ok', 'x-c', 'a\r\nx-injected: 1'], ['x-c\r\nx-injected', '1'], ['x-a', 'ok', 'x-c\nx', '1'], ['x-c', 'a\0'], ['x-big', 'é'.repeat(20_000), 'x-c', '\n']]) {
      const out = written(headers as string[], '0.1ms', 'x');
      expect([out.contentLength, out.calls, out.wire.length]).toEqual([null, 0, 0]);
    }
  });

  it('falls back to a call per header for a head larger than its scratch buffer, with the same bytes', () => {
    const headers = ['set-cookie', 'a'.repeat(10_000), 'set-cookie', 'b'.repeat(10_000)];
    const out = written(headers, '0.1ms', 'x');
    expect(out.calls).toBeGreaterThan(1);
    expect(out.wire.equals(reference('200 OK', headers, '0.1ms', 'x'))).toBe(true);
  });

  it('writes the same bytes for names past the cache of line starts and for a name outside ASCII', () => {
    // 600 names: the cache of `\r\nname: ` bytes holds 512, the rest go a character at a time.
    const many = Array.from({ length: 600 }, (_, i) => [`x-many-${i}`, `v${i}`]).flat();
    const out = written(many, '0.2ms', 'id-1');
    expect(out.calls).toBe(1);
    expect(out.wire.equals(reference('200 OK', many, '0.2ms', 'id-1'))).toBe(true);
    const again = written(['x-many-599', 'w', 'x-many-3', 'u'], '0.2ms', 'id-2');
    expect(again.wire.toString('latin1')).toBe('HTTP/1.1 200 OK\r\nx-many-599: w\r\nx-many-3: u\r\nx-gateway-response-time: 0.2ms\r\nx-request-id: id-2\r\n');
    const foreign = ['content-type', 'text/plain', 'x-caf\u00e9', 'ok'];
    expect(written(foreign, '0.2ms', 'id-3').wire.equals(reference('200 OK', foreign, '0.2ms', 'id-3'))).toBe(true);
  });

  it('writes the same bytes as a call per header for any header list', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.oneof(token, fc.constantFrom('content-length', 'date', 'x-request-id', 'caf\u00e9')), value), { maxLength: 12 }),
      fc.oneof(fc.constant('abc-1'), fc.string({ maxLength: 20 })),
      (pairs, id) => {
        const headers = pairs.flat();
        // A value with CR, LF or NUL on a line that is written: refused, nothing written (review RR2 #4).
        // eslint-disable-next-line no-control-regex
        const unsafe = pairs.some(([n, v]) => !SKIP.has(n) && /[\r\n\0]/.test(v));
        const out = written(headers, '2.5ms', id);
        if (unsafe) expect([out.contentLength, out.wire.length]).toEqual([null, 0]);
        else expect(out.wire.equals(reference('200 OK', headers, '2.5ms', id))).toBe(true);
      },
    ));
  });
});

describe('writeErrorHead', () => {
  it('writes content type, request id, response time and the error\'s headers, in that order', () => {
    const r = new Recorder();
    writeErrorHead(r as unknown as HttpResponse, 429, { 'retry-after': '1', 'x-why': 'caf\u00e9' }, '0.2ms', 'e-1');
    expect(r.wire.toString('utf8')).toBe('HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nx-request-id: e-1\r\n'
      + 'x-gateway-response-time: 0.2ms\r\nretry-after: 1\r\nx-why: caf\u00e9\r\n');
  });
});
