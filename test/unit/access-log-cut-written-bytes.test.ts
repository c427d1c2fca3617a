import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { AccessLog } from '../../lib/observe/access-log.ts';

/**
 * Review RH, L1 (e856a71): the access log's cut of a client's own text
 * counted UTF-16 code units before JSON escaping, so five headers of 3,000
 * `"` each made a 20,919-byte line (the 16 KiB the cut was for), and a cut
 * could fall between the halves of a character beyond the BMP, writing a
 * lone `\ud83d` escape a strict UTF-8 JSON reader refuses. The cut is now at
 * 2,048 bytes as written, never inside a pair.
 */

function logged(req: { path: string; query?: string; headers?: Record<string, string> }): string {
  let out = '';
  const sink = new Writable({ write(chunk: Buffer, _enc, done) { out += chunk.toString('utf8'); done(); } });
  const log = AccessLog.create({ logger: pino({ level: 'info' }, sink), headers: ['h1', 'h2', 'h3', 'h4', 'h5'], query: true })!;
  log.finish({
    id: 'r-1', method: 'GET', normalizedPath: req.path, query: req.query ?? '', receivedAt: performance.now(),
    remoteAddress: '127.0.0.1', clientAddress: undefined, headers: req.headers ?? {}, locals: {},
  } as unknown as Parameters<typeof log.finish>[0], 200, 0, 0, 0);
  log.flushSync();
  return out;
}

const LONE = /\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}/i;

describe('the access log cut', () => {
  it('keeps a line with five headers of quotes, a path of control characters and a query of non-ASCII text under 16 KiB', () => {
    const headers = Object.fromEntries(['h1', 'h2', 'h3', 'h4', 'h5'].map((h) => [h, '"'.repeat(3000)]));
    const line = logged({ path: `/api/${'\u0001'.repeat(2100)}`, query: `q=${'é€'.repeat(2000)}`, headers });
    expect(Buffer.byteLength(line)).toBeLessThan(16 * 1024);
    const record = JSON.parse(line) as { path: string; query: string; headers: Record<string, string> };
    expect(record.headers['h1']).toBe(`${'"'.repeat(1024)}…`); // 2 bytes each written
    expect(record.path).toBe(`/api/${'\u0001'.repeat(340)}…`); // 6 bytes each: 5 + 340 * 6 = 2,045
    expect(Buffer.byteLength(JSON.stringify(record.query))).toBeLessThanOrEqual(2 + 2048 + 3);
  });

  it('never cuts between the halves of a character beyond the BMP', () => {
    for (const path of [`/api/${'😀'.repeat(1100)}`, `/ap/${'😀'.repeat(1100)}`]) {
      const line = logged({ path });
      expect(line).not.toMatch(LONE);
      expect(Buffer.from(line, 'utf8').toString('utf8')).toBe(line);
      const cut = (JSON.parse(line) as { path: string }).path;
      expect(cut.endsWith('😀…')).toBe(true);
      expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(2048 + 3);
    }
  });

  it('leaves plain ASCII cut at 2,048 characters and short text whole', () => {
    expect((JSON.parse(logged({ path: `/${'p'.repeat(3000)}` })) as { path: string }).path).toBe(`/${'p'.repeat(2047)}…`);
    const short = `/${'"\u0001é😀'.repeat(60)}`;
    expect((JSON.parse(logged({ path: short })) as { path: string }).path).toBe(short);
  });
});
