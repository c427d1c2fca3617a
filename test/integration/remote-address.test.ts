import { request } from 'undici';
import type { HttpResponse, us_listen_socket } from 'uWebSockets.js';
import { afterEach, describe, expect, it } from 'vitest';
import { addressText, peerAddressOf } from '../../lib/server/remote-address.ts';
import { loadUws } from '../../lib/server/uws.ts';

/**
 * The edge reads the client's address from uWS's binary form and writes the
 * text itself (one getpeername, no text ArrayBuffer or Buffer round trip):
 * it must be what uWS's own `getRemoteAddressAsText()` says, byte for byte.
 */
let close: (() => void) | null = null;
afterEach(() => {
  close?.();
  close = null;
});

/** A bare uWS app on `host` answering every GET with `answer(res)`; resolves to its port. */
function serve(host: string, answer: (res: HttpResponse) => string): Promise<number> {
  const uws = loadUws();
  const app = uws.App();
  app.get('/*', (res) => {
    res.end(answer(res));
  });
  return new Promise<number>((resolve, reject) => {
    app.listen(host, 0, (socket: us_listen_socket | false) => {
      if (socket === false) return reject(new Error(`cannot listen on ${host}`));
      close = () => {
        uws.us_listen_socket_close(socket);
        (app as { close?: () => void }).close?.();
      };
      resolve(uws.us_socket_local_port(socket));
    });
  });
}

const uwsText = (res: HttpResponse): string => Buffer.from(res.getRemoteAddressAsText()).toString();
/** The text the edge writes from uWS's binary address. */
const ourText = (res: HttpResponse): string => addressText(new Uint8Array(res.getRemoteAddress()));

describe('remote address', () => {
  it('is the text uWS writes, for IPv4 and IPv6 clients, on repeated requests', async () => {
    // '::' takes IPv4 clients too, as IPv4-mapped IPv6 addresses.
    const port = await serve('::', (res) => JSON.stringify([ourText(res), ourText(res), uwsText(res)]));
    const seen: string[] = [];
    for (const host of ['127.0.0.1', '[::1]', '127.0.0.1']) {
      const res = await request(`http://${host}:${port}/`);
      const [ours, again, theirs] = (await res.body.json()) as string[];
      expect(ours).toBe(theirs);
      expect(again).toBe(theirs);
      seen.push(ours!);
    }
    expect(seen).toEqual(['0000:0000:0000:0000:0000:ffff:7f00:0001', '0000:0000:0000:0000:0000:0000:0000:0001', '0000:0000:0000:0000:0000:ffff:7f00:0001']);
  });

  it('is the dotted IPv4 text on an IPv4 listener, cached or not', async () => {
    const port = await serve('127.0.0.1', (res) => JSON.stringify([peerAddressOf(res), uwsText(res)]));
    for (let i = 0; i < 2; i++) {
      const res = await request(`http://127.0.0.1:${port}/`);
      expect(await res.body.json()).toEqual(['127.0.0.1', '127.0.0.1']);
    }
  });
});
