import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { makeCa, pemFolder, type Issued } from '../support/certs.ts';
import { startGatewayFromYaml } from '../support/servers.ts';

describe('https upstreams', () => {
  let upstream: Server | undefined;
  let gateway: Gateway | undefined;
  /** The upstream's certificate for 127.0.0.1, and the path of the CA file that signed it. */
  let server: Issued;
  let caFile: string;
  const files = pemFolder();
  beforeAll(async () => {
    const ca = await makeCa('upstream CA');
    server = await ca.issue('127.0.0.1', { names: ['127.0.0.1', 'localhost'] });
    caFile = files.write('upstream-ca.crt', ca.cert);
  });
  afterAll(() => files.remove());
  afterEach(async () => {
    await gateway?.close();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r) ?? r(undefined));
  });

  async function start(serviceExtra: string): Promise<string> {
    upstream = createServer({ cert: server.cert, key: server.key }, (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ tls: true, url: req.url, host: req.headers.host }));
    });
    await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', () => r()));
    const port = (upstream.address() as AddressInfo).port;
    const gw = await startGatewayFromYaml(`
services:
  secure: { upstreams: ["https://127.0.0.1:${port}"], retry: false${serviceExtra} }
routes:
  - { path: /*, service: secure }
`);
    gateway = gw;
    return gw.url;
  }

  it('forwards to an https upstream whose certificate is signed by the configured tlsCa', async () => {
    const url = await start(`, tlsCa: "${caFile}"`);
    const res = await request(`${url}/secure/path?q=1`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ tls: true, url: '/secure/path?q=1' });
  });

  it('answers 502 BAD_GATEWAY when the upstream certificate is not trusted', async () => {
    const url = await start('');
    const res = await request(`${url}/x`);
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toEqual({ error: { code: 'BAD_GATEWAY', message: expect.stringContaining('upstream') } });
  });

  it('forwards to an upstream whose certificate it cannot verify with tlsVerify: false', async () => {
    const url = await start(', tlsVerify: false');
    const res = await request(`${url}/x`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ tls: true });
  });
});
