import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { startGatewayFromYaml } from '../support/servers.ts';

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
const cert = readFileSync(fixture('upstream-cert.pem'));
const key = readFileSync(fixture('upstream-key.pem'));

describe('https upstreams', () => {
  let upstream: Server | undefined;
  let gateway: Gateway | undefined;
  afterEach(async () => {
    await gateway?.close();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r) ?? r(undefined));
  });

  async function start(serviceExtra: string): Promise<string> {
    upstream = createServer({ cert, key }, (req, res) => {
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
    const url = await start(`, tlsCa: "${fixture('upstream-cert.pem')}"`);
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

  it('forwards to a self-signed upstream with tlsVerify: false', async () => {
    const url = await start(', tlsVerify: false');
    const res = await request(`${url}/x`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toMatchObject({ tls: true });
  });
});
