import { createPrivateKey } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { mutualTls, type Ca, type Issued, type MutualTls } from '../support/certs.ts';
import { startGatewayFromYaml } from '../support/servers.ts';

/**
 * A service's `tls`: the gateway's client certificate (mutual TLS), its own
 * CA, a fixed SNI name, and pins, against a real node:https upstream whose
 * certificates (and the gateway's) are made in the test.
 */

let serverCa: Ca;
let clientCa: Ca;
let server: Issued;
let client: Issued;
let files: MutualTls['files'];
let paths: MutualTls['paths'] & { clientKeyEncrypted: string };

beforeAll(async () => {
  const tls = await mutualTls('api.internal');
  ({ serverCa, clientCa, server, client, files } = tls);
  paths = { ...tls.paths, clientKeyEncrypted: files.write('client-enc.key', createPrivateKey(client.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'sesame' }) as string) };
});
afterAll(() => files.remove());

describe('upstream mTLS, CA and pins', () => {
  let upstream: Server;
  let gateway: Gateway | undefined;
  /** Requests the upstream's handler saw, with the client certificate's CN. */
  let seen: Array<string | null>;

  beforeAll(async () => {
    upstream = createServer({ cert: server.cert, key: server.key, ca: clientCa.cert, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const cn = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
      const client = typeof cn === 'string' ? cn : null;
      seen.push(client);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ client, url: req.url }));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  });
  afterAll(async () => {
    upstream.closeAllConnections();
    await new Promise((r) => upstream.close(r));
  });
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    upstream.closeAllConnections();
  });

  async function start(tls: string): Promise<string> {
    seen = [];
    const port = (upstream.address() as AddressInfo).port;
    const gw = await startGatewayFromYaml(`
services:
  api:
    upstreams: ["https://127.0.0.1:${port}"]
    retry: false
    tls: ${tls}
routes:
  - { path: /*, service: api }
`);
    gateway = gw;
    return gw.url;
  }

  const trusted = (): string => `ca: ${paths.serverCa}, servername: api.internal`;
  const withCert = (): string => `${trusted()}, cert: ${paths.clientCert}, key: ${paths.clientKey}`;

  it('presents the client certificate: the upstream that requires one accepts it', async () => {
    const url = await start(`{ ${withCert()} }`);
    const res = await request(`${url}/orders?id=7`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ client: 'rxgate-gateway', url: '/orders?id=7' });
  });

  it('without a client certificate the upstream refuses: 502 BAD_GATEWAY, and its handler never runs', async () => {
    const url = await start(`{ ${trusted()} }`);
    const res = await request(`${url}/orders`);
    expect(res.statusCode).toBe(502);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('BAD_GATEWAY');
    expect(seen).toEqual([]);
  });

  it('takes a client key encrypted with a passphrase', async () => {
    const url = await start(`{ ${trusted()}, cert: ${paths.clientCert}, key: ${paths.clientKeyEncrypted}, passphrase: sesame }`);
    const res = await request(`${url}/enc`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ client: 'rxgate-gateway', url: '/enc' });
  });

  it('checks the certificate against servername, not the IP in the URL', async () => {
    const url = await start(`{ ca: ${paths.serverCa}, cert: ${paths.clientCert}, key: ${paths.clientKey} }`);
    const res = await request(`${url}/x`);
    expect(res.statusCode).toBe(502);
    await res.body.dump();
    expect(seen).toEqual([]);
  });

  it('a pin that matches no certificate of the upstream: 502 with the pin error, the upstream never sees the request', async () => {
    const other = await serverCa.issue('other', { names: ['api.internal'] });
    const url = await start(`{ ${withCert()}, pin: ["${other.spkiPin}", "${other.fingerprint}"] }`);
    const res = await request(`${url}/pinned`);
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toEqual({ error: { code: 'BAD_GATEWAY', message: 'upstream certificate matches none of the pinned keys' } });
    expect(seen).toEqual([]);
  });

  it('a matching public key pin, or a matching fingerprint (with or without colons), lets the request through', async () => {
    for (const pin of [server.spkiPin, server.fingerprint, server.fingerprint.replace(/:/g, '').toLowerCase()]) {
      const url = await start(`{ ${withCert()}, pin: ["${pin}"] }`);
      const res = await request(`${url}/pinned`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ client: 'rxgate-gateway', url: '/pinned' });
      await gateway!.close();
      gateway = undefined;
    }
  });

  it('pins hold with rejectUnauthorized: false (a self-signed upstream pinned instead of trusted)', async () => {
    const ok = await start(`{ rejectUnauthorized: false, cert: ${paths.clientCert}, key: ${paths.clientKey}, pin: ["${server.spkiPin}"] }`);
    expect((await request(`${ok}/p`)).statusCode).toBe(200);
    await gateway!.close();
    const wrong = await start(`{ rejectUnauthorized: false, cert: ${paths.clientCert}, key: ${paths.clientKey}, pin: ["${client.spkiPin}"] }`);
    const res = await request(`${wrong}/p`);
    expect(res.statusCode).toBe(502);
    expect(((await res.body.json()) as { error: { message: string } }).error.message).toBe('upstream certificate matches none of the pinned keys');
    expect(seen).toEqual([]);
  });

  it('refuses at build time: an unreadable client key, a key that is not the certificate\'s, tls.ca with tlsCa, a malformed pin', async () => {
    const port = (upstream.address() as AddressInfo).port;
    const yaml = (service: string): string => `services:\n  api: { upstreams: ["https://127.0.0.1:${port}"], ${service} }\nroutes:\n  - { path: /*, service: api }\n`;
    await expect(startGatewayFromYaml(yaml(`tls: { cert: ${paths.clientCert}, key: ${files.dir}/nope.key }`))).rejects.toThrow(`services.api.tls.key: cannot read ${files.dir}/nope.key`);
    const stranger = files.write('stranger.key', (await clientCa.issue('stranger', { client: true })).key);
    await expect(startGatewayFromYaml(yaml(`tls: { cert: ${paths.clientCert}, key: ${stranger} }`))).rejects.toThrow('no usable client certificate and key');
    await expect(startGatewayFromYaml(yaml(`tlsCa: ${paths.serverCa}, tls: { ca: ${paths.serverCa} }`))).rejects.toThrow('set tls.ca or tlsCa, not both');
    await expect(startGatewayFromYaml(yaml('tls: { pin: ["md5/abc"] }'))).rejects.toThrow('expected sha256/<base64 of the SPKI>');
    await expect(startGatewayFromYaml(yaml(`tls: { cert: ${paths.clientCert} }`))).rejects.toThrow('needs both cert and key');
  });
});
