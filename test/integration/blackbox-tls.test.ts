import { webcrypto, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect as tcpConnect, type AddressInfo } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { Agent, request } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCa, pemFolder, type Ca, type Issued } from '../support/certs.ts';
import { freePort, rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * The TLS black-box audit (notes/s12/A13-findings.md): rxgate started as
 * users start it (the CLI on a YAML file), probed as an nginx, Envoy or
 * Traefik user would probe TLS at the edge and to upstreams: a chain with an
 * intermediate, ALPN offering h2, a client that never finishes its
 * handshake, wss and SSE over TLS, certificate rotation by SIGHUP, the
 * redirect listener with awkward targets and hostile Hosts, and upstreams
 * whose certificates are self-signed, expired or for another name, health
 * probes over mutual TLS, and TLS session reuse towards the upstream.
 * Certificates are made here (P-256), never checked in.
 */

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60 * 1000;
let serial = 0x7000;

/** A certificate signed by `issuer` (or self-signed), with its validity and CA flag chosen: what makeCa's leaves cannot be. */
async function signed(cn: string, issuer: { name: string; key: CryptoKey } | null, options: { ca?: boolean; names?: string[]; from?: number; to?: number } = {}): Promise<{ cert: string; key: string; name: string; privateKey: CryptoKey }> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: (serial++).toString(16), subject: `CN=${cn}`, issuer: issuer?.name ?? `CN=${cn}`,
    notBefore: new Date(Date.now() + (options.from ?? -DAY)), notAfter: new Date(Date.now() + (options.to ?? 30 * DAY)),
    publicKey: keys.publicKey, signingKey: issuer?.key ?? keys.privateKey, signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(options.ca === true, undefined, true),
      new x509.KeyUsagesExtension(options.ca === true ? x509.KeyUsageFlags.keyCertSign : x509.KeyUsageFlags.digitalSignature, true),
      ...(options.names !== undefined ? [new x509.SubjectAlternativeNameExtension(options.names.map((n) => (/^[\d.]+$/.test(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n })))] : []),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
  return {
    cert: cert.toString('pem'), name: `CN=${cn}`, privateKey: keys.privateKey,
    key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`,
  };
}

/** The raw bytes a plain TCP client gets for `text` on `port` until the server closes (or `wait` ms pass). */
function raw(port: number, text: string | Buffer, wait = 3000, enough?: (got: string) => boolean): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let got = '';
    const s = tcpConnect(port, '127.0.0.1', () => s.write(text));
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (enough?.(got) === true) { clearTimeout(timer); s.destroy(); resolve({ text: got, closed: false }); }
    });
    s.on('error', () => undefined);
    const timer = setTimeout(() => { s.destroy(); resolve({ text: got, closed: false }); }, wait);
    s.on('close', () => { clearTimeout(timer); resolve({ text: got, closed: true }); });
  });
}

/** A `node:tls` connection to the gateway, trusting `ca`, with the name and ALPN list given. */
function tlsTo(port: number, ca: string, servername: string, alpn?: string[]): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername, ...(alpn !== undefined ? { ALPNProtocols: alpn } : {}) }, () => resolve(s));
    s.on('error', reject);
  });
}

/** Sends one HTTP/1.1 request on an open TLS socket and resolves with the response text up to its Content-Length. */
function ask(s: TLSSocket, path: string, headers = ''): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (d: Buffer): void => {
      got += d.toString();
      const m = /content-length: (\d+)/i.exec(got);
      const end = got.indexOf('\r\n\r\n');
      if (m !== null && end >= 0 && got.length >= end + 4 + Number(m[1])) {
        s.off('data', onData);
        resolve(got);
      }
    };
    s.on('data', onData);
    s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n${headers}\r\n`);
  });
}

describe('the HTTPS listener, as nginx users probe it', () => {
  let runs: RxgateRuns;
  let proc: RxgateProcess;
  let upstream: Server;
  let wss: WebSocketServer;
  const files = pemFolder();
  let root: { cert: string; name: string; privateKey: CryptoKey };
  let intermediate: Awaited<ReturnType<typeof signed>>;
  let apiCa: Ca;
  let port = 0;
  let redirectPort = 0;
  let certPath = '';
  let keyPath = '';
  let releaseSse = (): void => {};

  beforeAll(async () => {
    root = await signed('edge root', null, { ca: true });
    intermediate = await signed('edge intermediate', { name: root.name, key: root.privateKey }, { ca: true });
    const leaf = await signed('localhost', { name: intermediate.name, key: intermediate.privateKey }, { names: ['localhost'] });
    // The leaf, then its intermediate: what a CA hands out as fullchain.pem.
    certPath = files.write('fullchain.pem', `${leaf.cert}\n${intermediate.cert}\n`);
    keyPath = files.write('privkey.pem', leaf.key);
    apiCa = await makeCa('api CA');
    const api = await apiCa.issue('api.test', { names: ['api.test'] });
    const shop = await apiCa.issue('shop wildcard', { names: ['*.shop.test'] });
    upstream = createServer((req, res) => {
      if (req.url === '/sse') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: first\n\n');
        releaseSse = () => res.end('data: last\n\n');
        return;
      }
      req.resume();
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url: req.url, proto: req.headers['x-forwarded-proto'], forwarded: req.headers['forwarded'] ?? null }));
    });
    wss = new WebSocketServer({ noServer: true });
    wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
    upstream.on('upgrade', (req: IncomingMessage, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    port = await freePort();
    redirectPort = await freePort();
    runs = rxgateRuns();
    proc = runs.start(['--config', runs.file(`
listen:
  host: 127.0.0.1
  port: ${port}
  tls:
    cert: \${A13_CERT}
    key: \${A13_KEY}
    sni:
      - { serverName: api.test, cert: ${files.write('api.crt', api.cert)}, key: ${files.write('api.key', api.key)} }
      - { serverName: "*.Shop.test", cert: ${files.write('shop.crt', shop.cert)}, key: ${files.write('shop.key', shop.key)} }
  redirectHttp: { port: ${redirectPort} }
services:
  up: { upstreams: ["http://127.0.0.1:${(upstream.address() as AddressInfo).port}"] }
routes:
  - { path: /ws/*, service: up, websocket: true }
  - { path: /sse, service: up, streamIdleTimeout: 10s }
  - { path: /*, service: up }
`)], { RXGATE_LOG_LEVEL: 'info', A13_CERT: certPath, A13_KEY: keyPath });
    await proc.logged('rxgate listening');
  });

  afterAll(async () => {
    runs?.remove();
    for (const c of wss?.clients ?? []) c.terminate();
    upstream?.closeAllConnections();
    await new Promise((r) => upstream?.close(r));
    files.remove();
  });

  it('serves the certificate files named by ${VAR}, sending the intermediate so a client trusting only the root verifies', async () => {
    const s = await tlsTo(port, root.cert, 'localhost');
    try {
      expect(s.authorized).toBe(true);
      const chain = s.getPeerCertificate(true);
      expect(chain.subject.CN).toBe('localhost');
      expect(chain.issuerCertificate.subject.CN).toBe('edge intermediate');
    } finally {
      s.destroy();
    }
  });

  it('sends X-Forwarded-Proto: https upstream and no Forwarded, whatever the client claims', async () => {
    const dispatcher = new Agent({ connect: { ca: root.cert, servername: 'localhost' } });
    try {
      const res = await request(`https://127.0.0.1:${port}/claims`, { dispatcher, headers: { 'x-forwarded-proto': 'http', forwarded: 'proto=http;host=evil' } });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ url: '/claims', proto: 'https', forwarded: null });
    } finally {
      await dispatcher.close();
    }
  });

  it('answers over HTTP/1.1 to a client offering ALPN h2,http/1.1 (no h2, no hang), and to undici with allowH2', async () => {
    const s = await tlsTo(port, root.cert, 'localhost', ['h2', 'http/1.1']);
    try {
      expect(s.alpnProtocol).not.toBe('h2');
      expect(await ask(s, '/alpn')).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      s.destroy();
    }
    const dispatcher = new Agent({ allowH2: true, connect: { ca: root.cert, servername: 'localhost' } });
    try {
      const res = await request(`https://127.0.0.1:${port}/h2`, { dispatcher });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toMatchObject({ url: '/h2', proto: 'https' });
    } finally {
      await dispatcher.close();
    }
  });

  it('refuses a client-initiated TLS 1.2 renegotiation (a CPU-exhaustion lever nginx refuses too)', async () => {
    const s = await new Promise<TLSSocket>((resolve, reject) => {
      const c = tlsConnect({ host: '127.0.0.1', port, ca: root.cert, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => resolve(c));
      c.on('error', reject);
    });
    s.on('error', () => undefined);
    try {
      const outcome = await new Promise<string>((resolve) => {
        s.renegotiate({ rejectUnauthorized: true }, (err) => resolve(err === null ? 'renegotiated' : 'refused'));
        s.once('close', () => resolve('refused'));
      });
      expect(outcome).toBe('refused');
    } finally {
      s.destroy();
    }
  });

  it('picks the sni entry\'s certificate for its name, in any case (RFC 6066: DNS names are case-insensitive), and the default one for any other', async () => {
    // Before, a name in another case than its entry's got the default certificate (uSockets compares bytes).
    for (const [name, cn] of [['api.test', 'api.test'], ['API.Test', 'api.test'], ['a.shop.test', 'shop wildcard'], ['B.SHOP.TEST', 'shop wildcard']]) {
      const api = await tlsTo(port, apiCa.cert, name!);
      expect(api.getPeerCertificate().subject.CN, name).toBe(cn);
      expect(await ask(api, '/sni'), name).toMatch(/^HTTP\/1\.1 200 /);
      api.destroy();
    }
    // Two labels under a one-label wildcard: the default certificate (which does not name it).
    const deeper = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, servername: 'A.b.Shop.test', rejectUnauthorized: false }, () => resolve(s));
      s.on('error', reject);
    });
    expect(deeper.getPeerCertificate().subject.CN).toBe('localhost');
    deeper.destroy();
    const other = await tlsTo(port, root.cert, 'localhost');
    expect(other.getPeerCertificate().subject.CN).toBe('localhost');
    other.destroy();
  });

  it('adds at most 32 names in another case per listener (each a TLS context and a router), then serves the default certificate', async () => {
    // 40 spellings of api.test none of the other cases used: uppercase letters by the bits of 40..79.
    const spellings = Array.from({ length: 40 }, (_, i) => [...'apitest'].map((c, b) => ((i + 40) >> b) & 1 ? c.toUpperCase() : c).join('').replace(/^(...)/, '$1.'));
    const served: string[] = [];
    for (const name of spellings) {
      const s = await new Promise<TLSSocket>((resolve, reject) => {
        const c = tlsConnect({ host: '127.0.0.1', port, servername: name, rejectUnauthorized: false }, () => resolve(c));
        c.on('error', reject);
      });
      served.push(s.getPeerCertificate().subject.CN as string);
      s.destroy();
    }
    expect(served[0]).toBe('api.test');
    expect(served.at(-1)).toBe('localhost');
    expect(served.filter((cn) => cn === 'api.test').length).toBeLessThanOrEqual(32);
  });

  it('closes a connection whose handshake never finishes, and one that sends plain HTTP, without a byte', async () => {
    // A ClientHello's record header and the first bytes, then nothing (a slowloris on the handshake); uWS's idle timeout ends it.
    const [stalled, silent, plain] = await Promise.all([
      raw(port, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00]), 25_000),
      raw(port, Buffer.alloc(0), 25_000),
      raw(port, 'GET / HTTP/1.1\r\nHost: localhost\r\n\r\n'),
    ]);
    expect(stalled).toEqual({ text: '', closed: true });
    expect(silent).toEqual({ text: '', closed: true });
    expect(plain).toEqual({ text: '', closed: true });
  }, 40_000);

  it('relays a WebSocket over TLS (wss:// at the edge)', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws/echo`, { ca: root.cert, servername: 'localhost' } as WebSocket.ClientOptions);
    try {
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
      const echoed = new Promise<string>((resolve) => ws.once('message', (m: Buffer) => resolve(m.toString())));
      ws.send('over tls');
      expect(await echoed).toBe('over tls');
    } finally {
      ws.terminate();
    }
  });

  it('streams Server-Sent Events over TLS: the first event arrives while the upstream holds the stream', async () => {
    const dispatcher = new Agent({ connect: { ca: root.cert, servername: 'localhost' } });
    try {
      const res = await request(`https://127.0.0.1:${port}/sse`, { dispatcher, headers: { accept: 'text/event-stream' } });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/event-stream');
      const reader = res.body[Symbol.asyncIterator]();
      const first = await reader.next();
      expect(String(first.value)).toContain('data: first');
      releaseSse();
      let rest = '';
      for (let r = await reader.next(); r.done !== true; r = await reader.next()) rest += String(r.value);
      expect(rest).toContain('data: last');
    } finally {
      await dispatcher.close();
    }
  });

  describe('the redirect listener (listen.redirectHttp)', () => {
    /** The redirect listener's answer to `text`: a redirect's head as soon as it is whole, anything else once closed (or 2 s). */
    const head = async (text: string): Promise<{ status: string; location: string | null; closed: boolean; text: string }> => {
      const out = await raw(redirectPort, text, 2000, (got) => /^HTTP\/1\.1 30[18] /.test(got) && got.includes('\r\n\r\n'));
      const status = /^HTTP\/1\.1 (\d{3})/.exec(out.text)?.[1] ?? '';
      return { status, location: /\r\nlocation: ([^\r]*)/i.exec(out.text)?.[1] ?? null, closed: out.closed, text: out.text };
    };

    it('keeps the path and query byte for byte (encoded characters, //, dot segments) under the Host without its port', async () => {
      expect(await head('GET /a%2Fb/%20c?q=%41&x=y%26z HTTP/1.1\r\nHost: localhost\r\n\r\n')).toMatchObject({ status: '301', location: `https://localhost:${port}/a%2Fb/%20c?q=%41&x=y%26z` });
      // `//evil.example/x` is a path here: the host stays the request's (nginx's `https://$host$request_uri` gives the same).
      expect(await head('GET //evil.example/x HTTP/1.1\r\nHost: localhost:8080\r\n\r\n')).toMatchObject({ status: '301', location: `https://localhost:${port}//evil.example/x` });
      expect(await head('GET /a/../b HTTP/1.1\r\nHost: EXAMPLE.com\r\n\r\n')).toMatchObject({ status: '301', location: `https://example.com:${port}/a/../b` });
    });

    it('answers HEAD 301 with no body, and a POST with a body 308 (the method and body kept by clients)', async () => {
      const h = await head('HEAD /x HTTP/1.1\r\nHost: localhost\r\n\r\n');
      expect(h).toMatchObject({ status: '301', location: `https://localhost:${port}/x` });
      expect(h.text.endsWith('\r\n\r\n')).toBe(true);
      expect(await head('POST /form?a=1 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello')).toMatchObject({ status: '308', location: `https://localhost:${port}/form?a=1` });
      expect(await head('PUT /x HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n')).toMatchObject({ status: '308' });
    });

    it('never redirects to a host a hostile Host header names, and closes the connection its 400 says it closes', async () => {
      for (const host of ['evil.example/x', 'evil.example@localhost', 'evil.example\\@x', '', 'a b', 'localhost\r\nHost: evil.example']) {
        const r = await head(`GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
        expect(r.location, host).toBeNull();
        expect(r.status, host).toBe('400');
        expect(r.text, host).toMatch(/\r\nconnection: close\r\n/i);
        expect(r.closed, `${host}: the 400 says connection: close`).toBe(true);
      }
    });

    it('redirects a fully qualified Host without its trailing dot, as nginx\'s $host, and refuses empty labels (nginx: 400 for "a..b")', async () => {
      expect(await head('GET /x HTTP/1.1\r\nHost: Example.com.:80\r\n\r\n')).toMatchObject({ status: '301', location: `https://example.com:${port}/x` });
      expect(await head('GET /x HTTP/1.1\r\nHost: my_host.internal\r\n\r\n')).toMatchObject({ status: '301', location: `https://my_host.internal:${port}/x` });
      for (const host of ['a..b', '.a', 'a.-b']) expect(await head(`GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`), host).toMatchObject({ status: '400', location: null });
    });

    it('keeps a bare ? in Location, as nginx\'s $request_uri does', async () => {
      expect(await head('GET /x? HTTP/1.1\r\nHost: localhost\r\n\r\n')).toMatchObject({ status: '301', location: `https://localhost:${port}/x?` });
      expect(await head('GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n')).toMatchObject({ status: '301', location: `https://localhost:${port}/x` });
    });

    it('never redirects a request without a Host (uWS holds it unanswered) or with two', async () => {
      const [none, two] = await Promise.all([
        head('GET /x HTTP/1.1\r\n\r\n'),
        head('GET /x HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n'),
      ]);
      expect(none.location).toBeNull();
      expect(two).toMatchObject({ status: '400', location: null, closed: true });
    });
  });

  it('serves a renewed certificate to new connections after SIGHUP, and an open keep-alive connection still answers', async () => {
    const before = await tlsTo(port, root.cert, 'localhost');
    const oldSerial = before.getPeerCertificate().serialNumber;
    expect(await ask(before, '/before')).toMatch(/^HTTP\/1\.1 200 /);
    const renewed = await signed('localhost', { name: intermediate.name, key: intermediate.privateKey }, { names: ['localhost'] });
    writeFileSync(keyPath, renewed.key);
    writeFileSync(certPath, `${renewed.cert}\n${intermediate.cert}\n`);
    proc.proc.kill('SIGHUP');
    await proc.logged('TLS certificates reloaded: new connections get the new files, open ones finish on the old');
    const after = await tlsTo(port, root.cert, 'localhost');
    try {
      expect(after.authorized).toBe(true);
      expect(after.getPeerCertificate().serialNumber).toBe(new X509Certificate(renewed.cert).serialNumber);
      expect(after.getPeerCertificate().serialNumber).not.toBe(oldSerial);
      expect(await ask(before, '/still')).toMatch(/^HTTP\/1\.1 200 /);
    } finally {
      before.destroy();
      after.destroy();
    }
  });
});

describe('upstream TLS, as Envoy users probe it', () => {
  let runs: RxgateRuns;
  let proc: RxgateProcess;
  let admin = '';
  let gw = '';
  const files = pemFolder();
  const servers: HttpsServer[] = [];
  let upCa: Ca;
  let clientCa: Ca;
  /** Each TLS handshake an upstream finished, by upstream, and whether it resumed a session. */
  const handshakes = new Map<string, Array<{ resumed: boolean; client: string | null }>>();
  /** Health probes the mTLS upstream got, with the client certificate's CN. */
  const probes: Array<string | null> = [];

  async function https(name: string, cert: { cert: string; key: string }, extra: { requestCert?: boolean; ca?: string; close?: boolean } = {}): Promise<number> {
    const seen: Array<{ resumed: boolean; client: string | null }> = [];
    handshakes.set(name, seen);
    const server = createHttpsServer({ cert: cert.cert, key: cert.key, ...(extra.requestCert === true ? { requestCert: true, rejectUnauthorized: true, ca: extra.ca! } : {}) }, (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const client = (peer?.subject?.CN as string | undefined) ?? null;
      if (req.url === '/health') probes.push(client);
      req.resume();
      if (extra.close === true) res.setHeader('connection', 'close');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ upstream: name, url: req.url, client }));
    });
    server.on('secureConnection', (s: TLSSocket) => seen.push({ resumed: s.isSessionReused(), client: null }));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    return (server.address() as AddressInfo).port;
  }

  beforeAll(async () => {
    upCa = await makeCa('upstream CA');
    clientCa = await makeCa('gateway client CA');
    const good: Issued = await upCa.issue('localhost', { names: ['localhost', '127.0.0.1'] });
    const gatewayClient = await clientCa.issue('rxgate-gateway', { client: true });
    const caFile = files.write('up-ca.pem', upCa.cert);
    const selfSigned = await signed('localhost', null, { names: ['localhost', '127.0.0.1'] });
    const expiredCa = await signed('expired CA', null, { ca: true });
    const expired = await signed('localhost', { name: expiredCa.name, key: expiredCa.privateKey }, { names: ['localhost', '127.0.0.1'], from: -10 * DAY, to: -DAY });
    const otherName = await upCa.issue('other.test', { names: ['other.test'] });
    const ports = {
      selfSigned: await https('self-signed', selfSigned),
      expired: await https('expired', expired),
      otherName: await https('other-name', otherName),
      mtls: await https('mtls', good, { requestCert: true, ca: clientCa.cert }),
      reuse: await https('reuse', good),
      resume: await https('resume', good, { close: true }),
      pinned: await https('pinned', good, { close: true }),
    };
    const expiredCaFile = files.write('expired-ca.pem', expiredCa.cert);
    runs = rxgateRuns();
    proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
services:
  selfsigned: { upstreams: ["https://localhost:${ports.selfSigned}"], retry: false }
  expired: { upstreams: ["https://localhost:${ports.expired}"], retry: false, tls: { ca: ${expiredCaFile} } }
  expiredchecked: { upstreams: ["https://localhost:${ports.expired}"], tls: { ca: ${expiredCaFile} }, health: { path: /health, interval: 1s } }
  othername: { upstreams: ["https://localhost:${ports.otherName}"], retry: false, tls: { ca: ${caFile} } }
  mtls:
    upstreams: ["https://127.0.0.1:${ports.mtls}"]
    tls: { ca: ${caFile}, cert: ${files.write('client.crt', gatewayClient.cert)}, key: ${files.write('client.key', gatewayClient.key)}, servername: localhost }
    health: { path: /health, interval: 1s, timeout: 2s }
  reuse: { upstreams: ["https://localhost:${ports.reuse}"], tls: { ca: ${caFile} } }
  resume: { upstreams: ["https://localhost:${ports.resume}"], tls: { ca: ${caFile} } }
  pinned: { upstreams: ["https://localhost:${ports.pinned}"], retry: false, tls: { ca: ${caFile}, pin: ["${good.spkiPin}"] } }
routes:
  - { path: /selfsigned/*, service: selfsigned }
  - { path: /expired/*, service: expired }
  - { path: /expiredchecked/*, service: expiredchecked }
  - { path: /othername/*, service: othername }
  - { path: /mtls/*, service: mtls }
  - { path: /reuse/*, service: reuse }
  - { path: /resume/*, service: resume }
  - { path: /pinned/*, service: pinned }
`)], { RXGATE_LOG_LEVEL: 'info' });
    const [listening, adminListening] = await Promise.all([proc.logged('rxgate listening'), proc.logged('rxgate admin listening')]);
    gw = `http://127.0.0.1:${listening['port'] as number}`;
    admin = `http://127.0.0.1:${adminListening['port'] as number}`;
  });

  afterAll(async () => {
    runs?.remove();
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    files.remove();
  });

  const get = async (path: string): Promise<{ status: number; body: { error?: { code: string; message: string }; client?: string | null } }> => {
    const res = await request(`${gw}${path}`);
    return { status: res.statusCode, body: await res.body.json() as never };
  };

  it('verifies by default: a self-signed upstream, with no ca, is 502 BAD_GATEWAY and never served', async () => {
    const r = await get('/selfsigned/x'); 
    expect(r.status).toBe(502);
    expect(r.body.error).toEqual({ code: 'BAD_GATEWAY', message: expect.stringMatching(/upstream/i) });
  });

  it('refuses an upstream whose certificate has expired, and one whose certificate names another host: 502', async () => {
    for (const path of ['/expired/x', '/othername/x']) {
      const r = await get(path); 
      expect(r.status, path).toBe(502);
      expect(r.body.error?.code, path).toBe('BAD_GATEWAY');
    }
  });

  it('logs why an upstream handshake failed: the 502 says "upstream TLS handshake failed", the line names the certificate\'s fault', async () => {
    for (const path of ['/expired/why', '/othername/why', '/selfsigned/why']) expect((await get(path)).status, path).toBe(502);
    await until(() => proc.lines.filter((l) => l['msg'] === 'upstream TLS handshake failed').length >= 3, { timeout: 10_000 });
    const codes = proc.lines.filter((l) => l['msg'] === 'upstream TLS handshake failed').map((l) => (l['err'] as { code?: string }).code);
    expect(codes).toEqual(expect.arrayContaining(['CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'DEPTH_ZERO_SELF_SIGNED_CERT']));
  });

  it('says why in the admin /health: a health-checked instance whose certificate expired shows lastCheck.error CERT_HAS_EXPIRED', async () => {
    type Health = { services: Record<string, { instances: Array<{ healthy: boolean; lastCheck: { ok: boolean; error?: string } | null }> }> };
    let instance: Health['services'][string]['instances'][number] | undefined;
    await until(async () => {
      instance = (await (await request(`${admin}/health`)).body.json() as Health).services['expiredchecked']!.instances[0];
      return instance?.lastCheck !== null && instance?.lastCheck !== undefined;
    }, { timeout: 10_000 });
    expect(instance!.lastCheck).toMatchObject({ ok: false, error: 'CERT_HAS_EXPIRED' });
  });

  it('presents the client certificate on requests and on health probes, which mark the instance healthy', async () => {
    const r = await get('/mtls/x');
    expect(r.status).toBe(200);
    expect(r.body.client).toBe('rxgate-gateway');
    await until(() => probes.length > 0, { timeout: 10_000 });
    expect(probes.every((cn) => cn === 'rxgate-gateway')).toBe(true);
    const health = await (await request(`${admin}/health`)).body.json() as { services: Record<string, { instances: Array<{ healthy: boolean; lastCheck: { ok: boolean; status: number } | null }> }> };
    await until(async () => {
      const h = await (await request(`${admin}/health`)).body.json() as typeof health;
      return h.services['mtls']!.instances[0]!.lastCheck?.ok === true;
    }, { timeout: 10_000 });
    expect(health.services['mtls']!.instances[0]!.healthy).toBe(true);
  });

  it('keeps one TLS connection to the upstream for sequential requests (no handshake per request)', async () => {
    for (let i = 0; i < 10; i++) expect((await get(`/reuse/${i}`)).status).toBe(200);
    expect(handshakes.get('reuse')!.length).toBe(1);
  });

  it('resumes the TLS session when an upstream closes each connection (nginx proxy_ssl_session_reuse)', async () => {
    for (let i = 0; i < 4; i++) expect((await get(`/resume/${i}`)).status).toBe(200);
    const seen = handshakes.get('resume')!;
    expect(seen.length).toBe(4);
    expect(seen.slice(1).some((h) => h.resumed)).toBe(true);
  });

  it('a pinned service answers every request on new connections: a resumed TLS session has no certificate to check, so none is resumed', async () => {
    // Before, the second connection resumed the first one's session and got 502 "matches none of the pinned keys".
    for (let i = 0; i < 4; i++) expect((await get(`/pinned/${i}`)).status, `request ${i}`).toBe(200);
    expect(handshakes.get('pinned')!.map((h) => h.resumed)).toEqual([false, false, false, false]);
  });
});
