import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { makeCa, pemFolder } from '../support/certs.ts';
import { startGatewayFromYaml } from '../support/servers.ts';

/**
 * The SNI name and the name checked against an https upstream's certificate
 * are the upstream's (its URL's host, or `tls.servername`), never the Host a
 * `preserveHost` route passes on from the client: undici takes the name from
 * a request's Host header unless its connector fixes it. undici also drops
 * its connection when that name changes ("servername changed"): clients
 * alternating Host made a new upstream connection, and a handshake, per
 * request (review RA4, D4: 19 handshakes for 20 requests).
 */

const files = pemFolder();
let upstream: Server;
let gateway: Gateway & { url: string };
/** The SNI name of each request the upstream got (false: none sent), with its Host. */
const seen: Array<{ url: string; sni: string | false; host: string }> = [];
let handshakes = 0;

beforeAll(async () => {
  const ca = await makeCa('upstream CA');
  const leaf = await ca.issue('localhost', { names: ['localhost', '127.0.0.1'] });
  const caFile = files.write('ca.crt', ca.cert);
  upstream = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
    seen.push({ url: req.url!, sni: (req.socket as TLSSocket & { servername: string | false }).servername, host: req.headers.host! });
    res.end('ok');
  });
  upstream.on('secureConnection', () => { handshakes++; });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const port = (upstream.address() as AddressInfo).port;
  gateway = await startGatewayFromYaml(`
services:
  byname: { upstreams: ["https://localhost:${port}"], retry: false, tlsCa: "${caFile}" }
  byaddress: { upstreams: ["https://127.0.0.1:${port}"], retry: false, tlsCa: "${caFile}" }
  fixed: { upstreams: ["https://127.0.0.1:${port}"], retry: false, tls: { ca: "${caFile}", servername: localhost } }
  # One connection each, used by the reuse cases alone: their first request makes the only handshake.
  reusename: { upstreams: ["https://localhost:${port}"], retry: false, connections: 1, tlsCa: "${caFile}" }
  reusefixed: { upstreams: ["https://127.0.0.1:${port}"], retry: false, connections: 1, tls: { ca: "${caFile}", servername: localhost } }
routes:
  - { path: /reuse-name/*, service: reusename, preserveHost: true }
  - { path: /reuse-fixed/*, service: reusefixed, preserveHost: true }
  - { path: /name/*, service: byname, preserveHost: true }
  - { path: /address/*, service: byaddress, preserveHost: true }
  - { path: /fixed/*, service: fixed, preserveHost: true }
  - { path: /named-host/*, service: byaddress, preserveHost: other.example }
`);
});

afterAll(async () => {
  await gateway.close();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  files.remove();
});

async function get(path: string, host: string): Promise<{ status: number; body: string }> {
  const res = await request(`${gateway.url}${path}`, { headers: { host } });
  return { status: res.statusCode, body: await res.body.text() };
}

describe('the SNI name toward an https upstream on a preserveHost route', () => {
  it('is the upstream\'s name, whatever Host the client sends, and the client\'s Host still reaches the upstream', async () => {
    for (const host of ['localhost', 'evil.example', 'other.example']) {
      expect(await get(`/name/${host}`, host), host).toEqual({ status: 200, body: 'ok' });
    }
    const mine = ['/name/localhost', '/name/evil.example', '/name/other.example'];
    expect(seen.filter((s) => mine.includes(s.url)).map((s) => [s.sni, s.host])).toEqual([
      ['localhost', 'localhost'], ['localhost', 'evil.example'], ['localhost', 'other.example'],
    ]);
  });

  it('is none for an upstream given by address, or tls.servername when set, also under preserveHost: "name"', async () => {
    expect((await get('/address/a', 'evil.example')).status).toBe(200);
    expect((await get('/fixed/b', 'evil.example')).status).toBe(200);
    expect((await get('/named-host/c', 'evil.example')).status).toBe(200);
    const sni = (prefix: string): Array<string | false> => seen.filter((s) => s.url.startsWith(prefix)).map((s) => s.sni);
    expect([sni('/address/'), sni('/fixed/'), sni('/named-host/')]).toEqual([[false], ['localhost'], [false]]);
  });

  it('never lets clients open the service\'s breaker with made-up Hosts', async () => {
    for (let i = 0; i < 8; i++) expect((await get(`/name/forged-${i}`, `forged-${i}.example`)).status).toBe(200);
    expect((await get('/name/after', 'localhost')).status).toBe(200);
  });

  for (const path of ['/reuse-name/', '/reuse-fixed/']) {
    it(`keeps one connection for 20 requests whose Host alternates (${path})`, async () => {
      const before = handshakes;
      for (let i = 0; i < 20; i++) {
        const host = i % 2 === 0 ? 'a.example' : 'b.example';
        expect(await get(`${path}alternate-${i}`, host)).toEqual({ status: 200, body: 'ok' });
      }
      // The one connection its service opens; each Host change reconnected before.
      expect(handshakes - before).toBe(1);
      // The client's Host still reaches the upstream, on every request.
      expect(seen.filter((r) => r.url.startsWith(`${path}alternate-`)).map((r) => r.host)).toEqual(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? 'a.example' : 'b.example')));
    });
  }
});
