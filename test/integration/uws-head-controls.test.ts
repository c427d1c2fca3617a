import { connect } from 'node:net';
import type { TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadUws, uwsBuild } from '../../lib/server/uws.ts';

/**
 * What lets the edge skip its own CR/LF/NUL scan of header values on uWS
 * 20.30 (lib/server/head-rules.ts): that build never hands such a head to a
 * handler (it holds the connection until its ~10 s idle timeout closes it). If a uWS update starts handing such heads
 * over, this fails, and the edge must scan again on that build.
 */

let app: TemplatedApp | null = null;
let socket: us_listen_socket | null = null;
afterEach(() => {
  if (socket !== null) loadUws().us_listen_socket_close(socket);
  socket = null;
  app = null;
});

/** What the server sends back to `head` before closing (or 500 ms of nothing). */
function send(port: number, head: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => s.destroy(), 500);
    s.on('data', (d: Buffer) => { out += d.toString('latin1'); });
    s.on('error', () => undefined);
    s.on('close', () => { clearTimeout(timer); resolve(out); });
    s.write(head);
  });
}

describe.runIf(uwsBuild().build === 'trufflesuite')('uWS 20.30 and control bytes in a header value', () => {
  it('never calls the handler for CR, LF or NUL in a value, and serves a tab', async () => {
    const uws = loadUws();
    const seen: string[] = [];
    app = uws.App().any('/*', (res, req) => {
      seen.push(req.getHeader('x-a'));
      res.end('ok');
    });
    const port = await new Promise<number>((resolve, reject) => {
      app!.listen('127.0.0.1', 0, (s) => {
        if (s === false) reject(new Error('listen failed'));
        else {
          socket = s;
          resolve(uws.us_socket_local_port(s));
        }
      });
    });
    for (const value of ['a\rb', 'a\nb', 'a\0b', '\r', '\0']) {
      expect(await send(port, `GET /x HTTP/1.1\r\nHost: gw\r\nX-A: ${value}\r\n\r\n`)).toBe('');
    }
    expect(seen).toEqual([]);
    // The same head with an allowed value reaches the handler: the test itself can tell the two apart.
    expect(await send(port, 'GET /x HTTP/1.1\r\nHost: gw\r\nX-A: a\tb\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200/);
    expect(seen).toEqual(['a\tb']);
  });
});
