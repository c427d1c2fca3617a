import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { makeCa, pemFolder } from '../support/certs.ts';
import { startGatewayFromYaml } from '../support/servers.ts';

/**
 * undici names a request's TLS server from its Host header unless told one,
 * and drops its connection when the name changes ("servername changed"): on a
 * preserveHost route to an https upstream, clients alternating Host made the
 * gateway open a new upstream connection, and a handshake, per request
 * (review RA4, D4: 19 handshakes for 20 requests).
 */

const files = pemFolder();
let upstream: Server;
let gateway: Gateway & { url: string };
let handshakes = 0;

beforeAll(async () => {
  const ca = await makeCa('upstream CA');
  const leaf = await ca.issue('localhost', { names: ['localhost', '127.0.0.1'] });
  const caFile = files.write('ca.crt', ca.cert);
  upstream = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => res.end(req.headers.host));
  upstream.on('secureConnection', () => { handshakes++; });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const port = (upstream.address() as AddressInfo).port;
  gateway = await startGatewayFromYaml(`
services:
  byname: { upstreams: ["https://localhost:${port}"], retry: false, connections: 1, tlsCa: "${caFile}" }
  byaddress: { upstreams: ["https://127.0.0.1:${port}"], retry: false, connections: 1, tls: { ca: "${caFile}", servername: localhost } }
routes:
  - { path: /name/*, service: byname, preserveHost: true }
  - { path: /address/*, service: byaddress, preserveHost: true }
`);
});

afterAll(async () => {
  await gateway.close();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  files.remove();
});

describe('an https upstream behind a preserveHost route', () => {
  for (const path of ['/name/x', '/address/x']) {
    it(`keeps one connection for 20 requests whose Host alternates (${path.split('/')[1]})`, async () => {
      const before = handshakes;
      for (let i = 0; i < 20; i++) {
        const host = i % 2 === 0 ? 'a.example' : 'b.example';
        const res = await request(`${gateway.url}${path}`, { headers: { host } });
        expect(res.statusCode).toBe(200);
        expect(await res.body.text()).toBe(host); // the client's Host still reaches the upstream
      }
      expect(handshakes - before).toBe(1);
    });
  }
});
