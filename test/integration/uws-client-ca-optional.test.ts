import { request } from 'node:https';
import type { TemplatedApp } from 'uWebSockets.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeApp } from '../../lib/server/tls.ts';
import { loadUws } from '../../lib/server/uws.ts';
import { makeCa, pemFolder, type Ca, type Issued } from '../support/certs.ts';

/**
 * Why rxgate has no `listen.tls.clientCa` (nginx `ssl_verify_client on`, Envoy
 * `require_client_certificate`): uWS's `ca_file_name` makes uSockets ask for a
 * client certificate and verify one that is sent (`SSL_VERIFY_PEER`), but not
 * refuse a handshake without one (no `SSL_VERIFY_FAIL_IF_NO_PEER_CERT`:
 * uSockets src/crypto/openssl.c, `create_ssl_context_from_options`), and no
 * uWS call tells JS whether a certificate was presented. A client that sends
 * none is served: such a key would check only the clients that volunteer.
 *
 * Against the uWS the process loads, on loopback: when this fails (a uWS that
 * refuses the client without a certificate, or shows it), the key can be built
 * on it; docs/tls.md ("Client certificates") says what to change.
 */

let serverCa: Ca;
let clientCa: Ca;
let server: Issued;
let good: Issued;
let stranger: Issued;
let files: ReturnType<typeof pemFolder>;
let app: TemplatedApp;
let port = 0;
/** The response's methods, and those of them that could be about the peer's certificate. */
const methods: string[] = [];
const seen: string[] = [];

beforeAll(async () => {
  serverCa = await makeCa('uws server CA');
  clientCa = await makeCa('uws client CA');
  server = await serverCa.issue('localhost', { names: ['127.0.0.1'] });
  good = await clientCa.issue('alice', { client: true });
  stranger = await (await makeCa('another CA')).issue('mallory', { client: true });
  files = pemFolder();
  const uws = loadUws();
  app = uws.SSLApp({
    cert_file_name: files.write('s.crt', server.cert), key_file_name: files.write('s.key', server.key),
    ca_file_name: files.write('client-ca.crt', clientCa.cert),
  });
  app.get('/*', (res) => {
    // Every method the response has, so a uWS that can show the peer certificate makes this test fail.
    methods.push(...Object.getOwnPropertyNames(Object.getPrototypeOf(res)));
    seen.push(...methods.filter((m) => /cert|x509|peer|verif/i.test(m)));
    res.end('served');
  });
  app.listen('127.0.0.1', 0, (s) => { if (s !== false) port = uws.us_socket_local_port(s); });
});
afterAll(() => {
  closeApp(app);
  files.remove();
});

/** A GET over TLS (1.3 unless `version` says) with `client` as the client certificate: `200 served`, `unknown ca` (the server's alert), or the error's code. */
function get(client?: Issued, version: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<string> {
  return new Promise((resolve) => {
    const certificate = client === undefined ? {} : { cert: client.cert, key: client.key };
    const req = request({ host: '127.0.0.1', port, path: '/', ca: serverCa.cert, agent: false, maxVersion: version, ...certificate }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    // Node names the alert in the code over TLS 1.3, only in the message over 1.2 (code EPROTO).
    req.on('error', (err: NodeJS.ErrnoException) => resolve(/alert unknown ca/.test(err.message) ? 'unknown ca' : err.code ?? err.message));
    req.end();
  });
}

describe('uWS with ca_file_name (what a listen.tls.clientCa would rest on)', () => {
  it('serves a client whose certificate chains to the CA', async () => {
    expect(port).toBeGreaterThan(0);
    expect(await get(good)).toBe('200 served');
  });

  it('refuses a certificate from another CA in the handshake, and keeps serving', async () => {
    expect(await get(stranger)).toBe('unknown ca');
    expect(await get(stranger, 'TLSv1.2')).toBe('unknown ca');
    expect(await get(good)).toBe('200 served');
  });

  it('serves a client that sends no certificate at all, over TLS 1.3 and 1.2: the CA is not required', async () => {
    expect(await get()).toBe('200 served');
    expect(await get(undefined, 'TLSv1.2')).toBe('200 served');
  });

  it('shows JS nothing of the peer certificate', () => {
    expect(methods).toContain('getRemoteAddressAsText');
    expect(seen).toEqual([]);
  });
});
