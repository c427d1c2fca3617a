import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { mutualTls, type Ca, type Issued, type MutualTls } from '../support/certs.ts';
import { startGatewayFromYaml } from '../support/servers.ts';
import { connect, wsUrl } from '../support/ws.ts';

/**
 * A websocket route to a `wss://` instance uses its service's `tls` as the
 * https pools do: the CA, the gateway's client certificate, the SNI name
 * and the pins. The upstream is a real node:https server requiring a client
 * certificate, with a `ws` server on it.
 */

let serverCa: Ca;
let server: Issued;
let files: MutualTls['files'];
let paths: MutualTls['paths'];

let upstream: Server;
let port = 0;
/** The client certificate's CN of every upgrade the upstream accepted. */
let accepted: string[] = [];
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  const tls = await mutualTls('chat.internal');
  ({ serverCa, server, files, paths } = tls);
  upstream = createServer({ cert: server.cert, key: server.key, ca: tls.clientCa.cert, requestCert: true, rejectUnauthorized: true });
  const wss = new WebSocketServer({ server: upstream });
  wss.on('connection', (ws, req) => {
    const cn = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
    accepted.push(typeof cn === 'string' ? cn : '?');
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  port = (upstream.address() as AddressInfo).port;
});
afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  files.remove();
});
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  accepted = [];
});

async function gateway(tls: string): Promise<string> {
  const gw = await startGatewayFromYaml(`
services:
  chat: { upstreams: ["https://127.0.0.1:${port}"], timeout: 2s, retry: false, tls: ${tls} }
routes:
  - { path: /chat/*, service: chat, websocket: true }
`);
  cleanups.push(() => gw.close());
  return wsUrl(gw.url);
}

/** The status of a refused upgrade (the gateway's answer to the handshake). */
function refusal(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('error', () => {});
  });
}

const trusted = (): string => `ca: ${paths.serverCa}, servername: chat.internal`;
const withCert = (): string => `${trusted()}, cert: ${paths.clientCert}, key: ${paths.clientKey}`;

describe('wss:// upstreams use the service tls', () => {
  it('presents the client certificate and trusts the service CA under its SNI name: frames relayed', async () => {
    const url = await gateway(`{ ${withCert()}, pin: ["${server.spkiPin}"] }`);
    const ws = await connect(`${url}/chat/room`);
    cleanups.push(() => ws.terminate());
    const echoed = new Promise<string>((r) => ws.once('message', (d) => r(String(d))));
    ws.send('hello over mTLS');
    expect(await echoed).toBe('hello over mTLS');
    expect(accepted).toEqual(['rxgate-gateway']);
  });

  it('without the client certificate the upstream refuses: 502, no upgrade accepted', async () => {
    const url = await gateway(`{ ${trusted()} }`);
    expect(await refusal(`${url}/chat/room`)).toBe(502);
    expect(accepted).toEqual([]);
  });

  it('a pin that matches no certificate of the upstream: 502 before any byte of the handshake reaches it', async () => {
    const other = await serverCa.issue('other', { names: ['chat.internal'] });
    const url = await gateway(`{ ${withCert()}, pin: ["${other.spkiPin}"] }`);
    expect(await refusal(`${url}/chat/room`)).toBe(502);
    expect(accepted).toEqual([]);
  });

  it('the certificate is checked against servername, not the IP: without it, 502', async () => {
    const url = await gateway(`{ ca: ${paths.serverCa}, cert: ${paths.clientCert}, key: ${paths.clientKey} }`);
    expect(await refusal(`${url}/chat/room`)).toBe(502);
    expect(accepted).toEqual([]);
  });
});
