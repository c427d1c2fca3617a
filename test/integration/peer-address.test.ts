import { request } from 'undici';
import type { us_listen_socket } from 'uWebSockets.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressText, peerAddressOf } from '../../lib/server/remote-address.ts';
import { loadUws } from '../../lib/server/uws.ts';

/**
 * The peer's address as nginx's `$remote_addr` writes it (audit A15, F3): a
 * dual-stack listener's IPv4 client is dotted, an IPv6 client compressed,
 * where uWS's own text (`addressText` of its binary form) is eight 4-digit groups.
 */
let closeAll = (): void => {};
let port = 0;

beforeAll(async () => {
  const uws = loadUws();
  const app = uws.App().get('/*', (res) => {
    res.end(JSON.stringify([peerAddressOf(res), peerAddressOf(res), addressText(new Uint8Array(res.getRemoteAddress()))]));
  });
  const socket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('::', 0, (s: us_listen_socket | false) => (s === false ? reject(new Error('cannot listen on ::')) : resolve(s))));
  port = uws.us_socket_local_port(socket);
  closeAll = () => {
    uws.us_listen_socket_close(socket);
    (app as { close?: () => void }).close?.();
  };
});

afterAll(() => closeAll());

describe('the peer address on a dual-stack listener', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1', '0000:0000:0000:0000:0000:ffff:7f00:0001'],
    ['[::1]', '::1', '0000:0000:0000:0000:0000:0000:0000:0001'],
  ])('from %s is %s, where uWS writes %s', async (host, canonical, uwsText) => {
    for (let i = 0; i < 2; i++) {
      const res = await request(`http://${host}:${port}/`);
      expect(await res.body.json()).toEqual([canonical, canonical, uwsText]);
    }
  });
});
