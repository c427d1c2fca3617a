import { createPrivateKey } from 'node:crypto';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import type { Gateway } from '../../lib/gateway.ts';
import { pino } from 'pino';
import type { Logger } from '../../lib/observe/log.ts';
import { httpsLocation } from '../../lib/server/redirect-http.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { connect as tcpConnect, createServer } from 'node:net';
import { makeCa, pemFolder, type Ca, type Issued } from '../support/certs.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * HTTPS termination on uWS `SSLApp`: certificates made in the test (a CA,
 * a default leaf and one per SNI name), real TLS clients on loopback.
 */

let ca: Ca;
let leaves: { default: Issued; a: Issued; b: Issued };

beforeAll(async () => {
  ca = await makeCa('rxgate test CA');
  leaves = {
    default: await ca.issue('default.test', { names: ['default.test', '127.0.0.1'] }),
    a: await ca.issue('a.test', { names: ['a.test'] }),
    b: await ca.issue('b.test', { names: ['b.test'] }),
  };
});

describe('TLS termination', () => {
  let upstream: TestUpstream;
  let gateway: (Gateway & { url: string }) | undefined;
  let files: ReturnType<typeof pemFolder>;
  const agents: Agent[] = [];
  const sockets: TLSSocket[] = [];

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ proto: req.headers['x-forwarded-proto'] ?? null, url: req.url }));
    });
  });
  afterAll(() => upstream.close());
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(agents.splice(0).map((a) => a.close()));
    await gateway?.close();
    gateway = undefined;
    files.remove();
  });

  /** Writes the certificates and starts a gateway on them; `listenExtra` goes into `listen`. */
  async function start(listenExtra = '', logger?: Logger, port = 0): Promise<Gateway & { url: string }> {
    files = pemFolder();
    const f = (name: string, leaf: Issued): { cert: string; key: string } => ({ cert: files.write(`${name}.crt`, leaf.cert), key: files.write(`${name}.key`, leaf.key) });
    const d = f('default', leaves.default);
    const a = f('a', leaves.a);
    const b = f('b', leaves.b);
    gateway = await startGatewayFromYaml(`
listen:
  tls:
    cert: ${d.cert}
    key: ${d.key}
    sni:
      - { serverName: a.test, cert: ${a.cert}, key: ${a.key} }
      - { serverName: b.test, cert: ${b.cert}, key: ${b.key} }${listenExtra}
services:
  echo: { upstreams: ["${upstream.url}"], retry: false }
routes:
  - { path: /*, service: echo }
`, defaultPipeline, process.env, { port, ...(logger === undefined ? {} : { logger }) });
    return gateway;
  }

  /** A TLS connection to the gateway: resolves once the handshake is done. */
  function tlsTo(options: ConnectionOptions): Promise<TLSSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port: gateway!.port, ca: ca.cert, ...options }, () => resolve(socket));
      sockets.push(socket);
      socket.once('error', reject);
    });
  }

  /** An HTTPS client that sends `servername` as SNI and trusts the test CA. */
  function httpsClient(servername?: string): Agent {
    const agent = new Agent({ connect: { ca: ca.cert, ...(servername !== undefined ? { servername } : {}) } });
    agents.push(agent);
    return agent;
  }

  it('picks the certificate of the name the client sends (SNI), and serves the routes under each name', async () => {
    await start();
    for (const [name, leaf] of [['a.test', leaves.a], ['b.test', leaves.b]] as const) {
      const socket = await tlsTo({ servername: name });
      expect(socket.authorized).toBe(true);
      expect(socket.getPeerCertificate().subject.CN).toBe(leaf.cn);
      const res = await request(`https://127.0.0.1:${gateway!.port}/via/${name}`, { dispatcher: httpsClient(name) });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ proto: 'https', url: `/via/${name}` });
    }
  });

  it('serves the default certificate to a name no sni entry has, and to a client that sends no SNI', async () => {
    await start();
    const unknown = await tlsTo({ servername: 'c.test', rejectUnauthorized: false });
    expect(unknown.getPeerCertificate().subject.CN).toBe('default.test');
    // Node sends no SNI for an IP address.
    const none = await tlsTo({});
    expect(none.authorized).toBe(true);
    expect(none.getPeerCertificate().subject.CN).toBe('default.test');
    const res = await request(`https://127.0.0.1:${gateway!.port}/plain`, { dispatcher: httpsClient() });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ proto: 'https', url: '/plain' });
  });

  it('sends X-Forwarded-Proto: https upstream, whatever the client claims', async () => {
    await start();
    const res = await request(`https://127.0.0.1:${gateway!.port}/proto`, { dispatcher: httpsClient('a.test'), headers: { 'x-forwarded-proto': 'http' } });
    expect(await res.body.json()).toEqual({ proto: 'https', url: '/proto' });
  });

  it('refuses TLS 1.0 and 1.1, and takes TLS 1.2 and 1.3', async () => {
    await start();
    for (const version of ['TLSv1', 'TLSv1.1'] as const) {
      // SECLEVEL=0 lets this client offer the old versions at all: the refusal is the server's alert.
      const old = tlsTo({ servername: 'a.test', minVersion: version, maxVersion: version, ciphers: 'DEFAULT@SECLEVEL=0' });
      await expect(old).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    }
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const socket = await tlsTo({ servername: 'a.test', minVersion: version, maxVersion: version });
      expect(socket.getProtocol()).toBe(version);
    }
  });

  it('closes plain HTTP sent to the TLS port without an answer (nginx answers 400 there)', async () => {
    await start();
    const got = await new Promise<{ text: string; closed: boolean }>((resolve) => {
      const socket = tcpConnect(gateway!.port, '127.0.0.1');
      let text = '';
      socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
      socket.on('error', () => undefined);
      socket.on('close', () => { clearTimeout(cap); resolve({ text, closed: true }); });
      const cap = setTimeout(() => { socket.destroy(); resolve({ text, closed: false }); }, 3000);
      socket.write('GET /plain HTTP/1.1\r\nHost: a.test\r\n\r\n');
    });
    expect(got).toEqual({ text: '', closed: true });
  });

  it('redirects plain HTTP to HTTPS: 301 for GET, 308 for POST, the Host without its port, path and query kept', async () => {
    await start('\n  redirectHttp: { port: 0 }');
    const base = `http://127.0.0.1:${gateway!.redirectPort}`;
    const get = await request(`${base}/some/path?x=1&y=%20`, { headers: { host: 'shop.test:8080' } });
    expect(get.statusCode).toBe(301);
    expect(get.headers.location).toBe(`https://shop.test:${gateway!.port}/some/path?x=1&y=%20`);
    await get.body.dump();
    const post = await request(`${base}/orders`, { method: 'POST', body: '{}', headers: { host: 'shop.test' } });
    expect(post.statusCode).toBe(308);
    expect(post.headers.location).toBe(`https://shop.test:${gateway!.port}/orders`);
    await post.body.dump();
    const bad = await request(`${base}/`, { headers: { host: 'evil.test/@x' } });
    expect(bad.statusCode).toBe(400);
    await bad.body.dump();
  });

  it('writes the configured httpsPort into Location, and none for 443', async () => {
    await start('\n  redirectHttp: { port: 0, httpsPort: 443 }');
    const res = await request(`http://127.0.0.1:${gateway!.redirectPort}/a?b`, { headers: { host: 'Shop.Test:80' } });
    expect(res.statusCode).toBe(301);
    expect(res.headers.location).toBe('https://shop.test/a?b');
    await res.body.dump();
    expect(httpsLocation('[::1]:80', '/', '', 8443)).toBe('https://[::1]:8443/');
    expect(httpsLocation('', '/', '', 8443)).toBeNull();
    expect(httpsLocation('a.test\r\nx: y', '/', '', 8443)).toBeNull();
  });

  it('reloadTls swaps in changed certificates on a fixed port: new connections get them, an open connection finishes on the old', async () => {
    const lines: string[] = [];
    await start('', pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } }), await freePort());
    const before = await tlsTo({ servername: 'a.test' });
    expect(before.getPeerCertificate().subject.CN).toBe('a.test');
    const old = httpsClient('a.test');
    const first = await request(`https://127.0.0.1:${gateway!.port}/one`, { dispatcher: old });
    expect(await first.body.json()).toEqual({ proto: 'https', url: '/one' });

    const renewed = await ca.issue('a.test renewed', { names: ['a.test'] });
    files.write('a.crt', renewed.cert);
    files.write('a.key', renewed.key);
    gateway!.reloadTls();
    expect(gateway!.tlsPending).toEqual([]);
    expect(lines.some((l) => l.includes('TLS certificates reloaded'))).toBe(true);
    expect((await tlsTo({ servername: 'a.test' })).getPeerCertificate().subject.CN).toBe('a.test renewed');
    // The other names and the default certificate are served as before, by the new listener.
    expect((await tlsTo({ servername: 'b.test' })).getPeerCertificate().subject.CN).toBe('b.test');
    // The keep-alive connection made before the swap still answers (on the old app).
    const again = await request(`https://127.0.0.1:${gateway!.port}/two`, { dispatcher: old });
    expect(await again.body.json()).toEqual({ proto: 'https', url: '/two' });
    const fresh = await request(`https://127.0.0.1:${gateway!.port}/three`, { dispatcher: httpsClient('a.test') });
    expect(await fresh.body.json()).toEqual({ proto: 'https', url: '/three' });
  });

  it('reloadTls on a listener whose port was 0 names the changed files and keeps its certificates (the port cannot be shared)', async () => {
    const lines: string[] = [];
    await start('', pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } }));
    expect(gateway!.tlsPending).toEqual([]);
    gateway!.reloadTls();
    expect(gateway!.tlsPending).toEqual([]);
    const renewed = await ca.issue('a.test renewed', { names: ['a.test'] });
    files.write('a.crt', renewed.cert);
    files.write('a.key', renewed.key);
    gateway!.reloadTls();
    expect(gateway!.tlsPending).toEqual(['listen.tls.sni[0] (a.test)']);
    expect(lines.some((l) => l.includes('TLS certificate files changed') && l.includes('a.test'))).toBe(true);
    // A listener on port 0 cannot be joined by a new one (docs/tls.md): the old certificate serves until a restart.
    expect((await tlsTo({ servername: 'a.test' })).getPeerCertificate().subject.CN).toBe('a.test');
    const res = await request(`https://127.0.0.1:${gateway!.port}/after`, { dispatcher: httpsClient('a.test') });
    expect(await res.body.json()).toEqual({ proto: 'https', url: '/after' });
  });

  it('a reload that finds a broken certificate logs it, naming the file, and never throws', async () => {
    const lines: string[] = [];
    await start('', pino({ level: 'info' }, { write: (line: string) => { lines.push(line); } }));
    const path = files.write('b.crt', 'not a certificate');
    expect(() => gateway!.reloadTls()).not.toThrow();
    expect(lines.some((l) => l.includes('unreadable or invalid') && l.includes(path))).toBe(true);
    expect(gateway!.tlsPending).toEqual([]);
    expect((await tlsTo({ servername: 'b.test' })).getPeerCertificate().subject.CN).toBe('b.test');
  });

  it('takes a key encrypted with a passphrase', async () => {
    files = pemFolder();
    const encrypted = createPrivateKey(leaves.default.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'sesame' }) as string;
    gateway = await startGatewayFromYaml(`
listen:
  tls: { cert: ${files.write('d.crt', leaves.default.cert)}, key: ${files.write('d.key', encrypted)}, passphrase: sesame }
services:
  echo: { upstreams: ["${upstream.url}"], retry: false }
routes:
  - { path: /*, service: echo }
`);
    const res = await request(`https://127.0.0.1:${gateway.port}/enc`, { dispatcher: httpsClient() });
    expect(await res.body.json()).toEqual({ proto: 'https', url: '/enc' });
  });

  it('refuses to start on an unreadable file, a wrong passphrase, or redirectHttp without tls', async () => {
    files = pemFolder();
    const cert = files.write('d.crt', leaves.default.cert);
    const yaml = (listen: string): string => `listen: ${listen}\nservices:\n  echo: { upstreams: ["${upstream.url}"] }\nroutes:\n  - { path: /*, service: echo }\n`;
    await expect(startGatewayFromYaml(yaml(`{ tls: { cert: ${cert}, key: ${files.dir}/missing.key } }`))).rejects.toThrow(`listen.tls.key: cannot read ${files.dir}/missing.key`);
    const encrypted = createPrivateKey(leaves.default.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'sesame' }) as string;
    await expect(startGatewayFromYaml(yaml(`{ tls: { cert: ${cert}, key: ${files.write('e.key', encrypted)}, passphrase: wrong } }`))).rejects.toThrow('no usable certificate and key');
    expect(() => parseConfig(yaml('{ redirectHttp: { port: 8080 } }'), 'x.yaml', {})).toThrow('redirectHttp needs tls');
  });
});

/** A port free now (the gateway then listens on it as a fixed port). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
