import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { map, of } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose, forward, Gateway, Service, type Handler, type Logger, type Policy } from '../../lib/index.ts';

/**
 * Review RR2 #4: a code stage's response head that uWS cannot write as given
 * (a header value that is not a string) threw inside the writer, through
 * RxJS's reportUnhandledError, and ended the process; a CR or LF in a value
 * was written raw (response splitting). Both are refused: a 500 in place of
 * the head, nothing of it sent, the connection closed after it, logged.
 */
let upstream: Server;
let gateway: Gateway;
let port = 0;
const logged: string[] = [];
const logger = {
  error: (_o: unknown, msg: string) => { logged.push(msg); }, warn: () => {}, info: () => {}, debug: () => {},
  child() { return this; },
} as unknown as Logger;

const answer = (headers: unknown[], extra: object = {}): Handler => () => of({ status: 200, headers: headers as string[], body: null, ...extra });
// A stage adding a header to a forwarded response (its body follows the head: the head is written with the first chunk).
const adding = (name: unknown, value: unknown): Policy => (next) => (req) => next(req).pipe(map((r) => ({ ...r, headers: [...r.headers, name as string, value as string] })));

beforeAll(async () => {
  upstream = createServer((_req, res) => res.end('upstream body'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const svc = new Service('svc', { upstreams: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`] });
  const fwd = forward(svc);
  gateway = new Gateway({
    host: '127.0.0.1', port: 0, services: [svc], logger,
    routes: [
      { path: '/num', handler: answer(['x-n', 5]) },
      { path: '/undef', handler: answer(['x-u', undefined]) },
      { path: '/crlf', handler: answer(['x-a', 'fine', 'x-c', 'a\r\nx-injected: 1']) },
      { path: '/lf', handler: answer(['x-c', 'a\nx-injected: 1']) },
      { path: '/nul', handler: answer(['x-c', 'a\0b']) },
      { path: '/name', handler: answer(['x-c\r\nx-injected', '1']) },
      { path: '/reason', handler: answer([], { statusText: 'OK\r\nx-injected: 1' }) },
      { path: '/status', handler: answer([], { status: 'abc' }) },
      { path: '/big', handler: answer(['x-big', 'é'.repeat(20_000), 'x-c', 'a\r\nx-injected: 1']) },
      { path: '/same', handler: answer(['x-a', 'fine', 'x-c', 'ok']) },
      { path: '/fwd-crlf', handler: compose(adding('x-c', 'a\r\nx-injected: 1'))(fwd) },
      { path: '/fwd-num', handler: compose(adding('x-n', 5))(fwd) },
      { path: '/ok', handler: fwd },
    ],
  });
  port = await gateway.listen();
});

afterAll(async () => {
  await gateway?.close();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

/** One request on a raw connection; what came back until the server closed it (or 2 s passed). */
function raw(path: string, method = 'GET'): Promise<{ text: string; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    const t = setTimeout(() => { s.destroy(); resolve({ text, closedByServer: false }); }, 2000);
    s.on('data', (d) => { text += d.toString('latin1'); });
    s.on('close', () => { clearTimeout(t); resolve({ text, closedByServer: true }); });
    s.on('error', () => {});
    s.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

describe('a response head a code stage cannot have written as given', () => {
  it.each(['/num', '/undef', '/crlf', '/lf', '/nul', '/name', '/reason', '/status', '/big', '/fwd-crlf', '/fwd-num'])('%s: 500 INTERNAL_ERROR in its place, nothing of it sent, the connection closed, logged', async (path) => {
    const before = logged.length;
    const { text, closedByServer } = await raw(path);
    expect(text).toMatch(/^HTTP\/1\.1 500 Internal Server Error\r\n/);
    expect(text).toContain('"code":"INTERNAL_ERROR"');
    expect(text.toLowerCase()).not.toContain('x-injected');
    expect(text).not.toContain('upstream body');
    expect(text.match(/HTTP\/1\.1/g)).toHaveLength(1);
    expect(closedByServer).toBe(true);
    expect(logged.length).toBe(before + 1);
  });

  it('refuses a CR/LF in a line after lines equal to the last head\'s (only fresh lines are scanned)', async () => {
    expect((await raw('/same')).text).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*x-a: fine\r\nx-c: ok\r\n/);
    const { text } = await raw('/crlf');
    expect(text).toMatch(/^HTTP\/1\.1 500 /);
    expect(text).not.toContain('x-injected');
  });

  it('HEAD gets the 500 too, and the gateway serves on', async () => {
    const head = await raw('/crlf', 'HEAD');
    expect([head.text.startsWith('HTTP/1.1 500 '), head.text.includes('x-injected'), head.closedByServer]).toEqual([true, false, true]);
    const ok = await raw('/ok');
    expect(ok.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*upstream body$/);
  });
});
