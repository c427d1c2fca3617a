import { createHmac, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { SignJWT, UnsecuredJWT } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, skipWithoutChromium } from '../support/browser.ts';
import { startRawUpstream, type RawUpstream } from '../support/raw-http.ts';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * The second black-box audit (notes/s6/audit.md): rxgate started as users
 * start it (the CLI on a YAML file), probed the way conformance suites for
 * nginx, Envoy, Kong or Traefik probe a gateway, on what the first audit
 * (blackbox-proxy.test.ts) did not cover: the cache as an HTTP cache (RFC
 * 9111), bearer auth (RFC 6750), rate-limit answers, CORS edge cases,
 * request smuggling and other edge refusals, proxy headers behind trusted
 * proxies, upstream bodies that end early or run long, and upstream heads a
 * strict parser refuses (from a raw node:net upstream).
 *
 * One upstream serves every case. Its answer is written in the query:
 * `status=`, `h=name:value` (repeatable), `body=`, `mode=` (echo, short,
 * long, chunkcut, trailers, hang, range, etag), so each case picks its own path
 * and never shares a cache entry with another. It counts requests by path.
 */

const SECRET = 'blackbox-http-secret-of-at-least-32-bytes';
/** A key pair for a gateway that verifies RS256 tokens with the public half. */
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const RSA_PUBLIC_PEM = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const ORIGIN = 'https://app.example.com';

let runs: RxgateRuns;
let upstream: Server;
/** Answers with the bytes `RAW_ANSWERS` names by the request's last path segment: what node:http will not send. */
let rawUp: RawUpstream;
/** Serves an empty page: its origin is a CORS origin of /cexp/*, for the browser case. */
let pages: Server;
let pageOrigin = '';
let gw = '';
let gwPort = 0;
/** Requests the upstream got, by path. */
const hits = new Map<string, number>();
/** The raw headers of the last request per path. */
const seenHeaders = new Map<string, string[]>();

const RAW_ANSWERS: Record<string, string> = {
  'cl-te': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'two-cl': 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'negative-cl': 'HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello',
  'obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok',
  'space-before-colon': 'HTTP/1.1 200 OK\r\nX-A : a\r\nContent-Length: 2\r\n\r\nok',
  'control-byte': 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok',
  'early-hints': 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'close-delimited': 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nread until the upstream closes',
  // For the audit's proposed cases (notes/s6/audit.md):
  'unsolicited-100': 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  'te-gzip': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
};

function answer(req: IncomingMessage, res: ServerResponse): void {
  const u = new URL(req.url!, 'http://upstream');
  hits.set(u.pathname, (hits.get(u.pathname) ?? 0) + 1);
  seenHeaders.set(u.pathname, req.rawHeaders);
  const mode = u.searchParams.get('mode');
  const socket = req.socket;
  switch (mode) {
    case 'hang': return;
    case 'short': // claims 100 bytes, sends 10, closes
      socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789');
      return;
    case 'long': // claims 5 bytes, sends 10
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n0123456789');
      return;
    case 'chunkcut': // one chunk, then the connection dies without the last chunk
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n', () => setImmediate(() => socket.destroy()));
      return;
    case 'trailers':
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('abc');
      res.addTrailers({ 'x-checksum': '123' });
      res.end();
      return;
    default:
  }
  const headers: Record<string, string[]> = {};
  for (const h of u.searchParams.getAll('h')) {
    const i = h.indexOf(':');
    (headers[h.slice(0, i).toLowerCase()] ??= []).push(h.slice(i + 1));
  }
  const body = mode === 'echo'
    ? JSON.stringify({ method: req.method, url: req.url, headers: req.rawHeaders })
    : u.searchParams.get('body') ?? `n=${hits.get(u.pathname)} ${req.method} ${u.pathname}`;
  if (mode === 'etag' && req.headers['if-none-match'] === '"v1"') {
    res.writeHead(304, { ...headers, etag: '"v1"' });
    res.end();
    return;
  }
  if (mode === 'etag') headers['etag'] = ['"v1"'];
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (mode === 'range' && range !== null) {
    const [start, end] = [Number(range[1]), Number(range[2])];
    res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${body.length}` });
    res.end(body.slice(start, end + 1));
    return;
  }
  const status = Number(u.searchParams.get('status') ?? 200);
  res.writeHead(status, headers);
  res.end(status === 204 || status === 304 || req.method === 'HEAD' ? undefined : body);
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(req, res));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  rawUp = await startRawUpstream((socket, seen) => {
    const name = seen.target.slice(seen.target.lastIndexOf('/') + 1);
    socket.write(RAW_ANSWERS[name] ?? 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    if (name === 'close-delimited') socket.end();
  });
  pages = createServer((_, res) => res.end('<!doctype html><title>page</title>'));
  await new Promise<void>((r) => pages.listen(0, '127.0.0.1', r));
  pageOrigin = `http://127.0.0.1:${(pages.address() as AddressInfo).port}`;
  runs = rxgateRuns();
  const gateway = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
# Under 4 KiB, so the 414 and 431 heads arrive in one read (uWS 20.30 closes a larger head read in pieces).
limits: { maxHeaderBytes: 3072, maxUrlLength: 1024 }
trustedProxies: [127.0.0.2/32]
auth: { secret: "${SECRET}", issuer: "https://idp.example/", audience: api, clockTolerance: 0s }
services:
  up: { upstreams: ["${up}"], retry: false, timeout: 2s }
  raw: { upstreams: ["${rawUp.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /c/*, service: up, rewrite: { stripPrefix: /c }, cache: { ttl: 60s, statuses: [200, 203, 204, 300, 301, 404, 405, 410, 414, 501] } }
  # /cpart/*, /cget/* and mode=etag serve the proposed cases in notes/s6/audit.md (/cpart listed 206 and 304, which the config now refuses).
  - { path: /cpart/*, service: up, rewrite: { stripPrefix: /cpart }, cache: { ttl: 60s, statuses: [200] } }
  - { path: /p/*, service: up, rewrite: { stripPrefix: /p } }
  - { path: /raw/*, service: raw, rewrite: { stripPrefix: /raw } }
  - { path: /t/*, service: up, rewrite: { stripPrefix: /t }, timeouts: { total: 300ms } }
  - { path: /small/*, service: up, rewrite: { stripPrefix: /small }, maxBodySize: 10 }
  - { path: /a/*, service: up, rewrite: { stripPrefix: /a }, auth: required }
  - { path: /as/*, service: up, rewrite: { stripPrefix: /as }, auth: { mode: required, stripAuthorization: true, forwardClaims: { sub: x-user } } }
  - { path: /ascope/*, service: up, rewrite: { stripPrefix: /ascope }, auth: { mode: required, scopes: [orders:read] } }
  - { path: /rl/*, service: up, rewrite: { stripPrefix: /rl }, rateLimit: { limit: 2, window: 1m } }
  - { path: /rlkey/*, service: up, rewrite: { stripPrefix: /rlkey }, rateLimit: { limit: 1, window: 1m, key: { header: x-api-key } } }
  - path: /cors/*
    service: up
    rewrite: { stripPrefix: /cors }
    auth: optional
    rateLimit: { limit: 1, window: 1m }
    cors: { origins: ["${ORIGIN}"], credentials: true, exposeHeaders: [x-total] }
  - { path: /cany/*, service: up, rewrite: { stripPrefix: /cany }, cors: {} }
  - { path: /cget/*, service: up, rewrite: { stripPrefix: /cget }, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"] } }
  - path: /cexp/*
    service: up
    rewrite: { stripPrefix: /cexp }
    auth: optional
    cors: { origins: ["${ORIGIN}", "${pageOrigin}"], credentials: true, exposeHeaders: ["*", x-request-id] }
  - { path: /ipf/*, service: up, rewrite: { stripPrefix: /ipf }, ipFilter: { allow: [10.0.0.0/8] } }
`)], { RXGATE_LOG_LEVEL: 'info' });
  const listening = await gateway.logged('rxgate listening');
  gwPort = Number(listening['port']);
  gw = `http://127.0.0.1:${gwPort}`;
}, 30_000);

afterAll(async () => {
  runs?.remove();
  await rawUp?.close();
  for (const server of [upstream, pages]) {
    server?.closeAllConnections();
    await new Promise<void>((r) => (server === undefined ? r() : server.close(() => r())));
  }
});

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

async function get(path: string, init: Parameters<typeof request>[1] = {}): Promise<Answer> {
  const res = await request(gw + path, init);
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** `h=` parameters for the upstream's answer headers. */
function h(...lines: string[]): string {
  return lines.map((l) => `h=${encodeURIComponent(l)}`).join('&');
}

function errorCode(body: string): string {
  return (JSON.parse(body) as { error: { code: string } }).error.code;
}

/**
 * Writes `data` on a new connection (from `localAddress`, when given) and
 * resolves with everything the gateway sent, once it closes or `until` says
 * enough has come; `closed` says which. No clock of its own: a gateway that
 * never closes fails on the test's timeout, however loaded the machine.
 * `waitMs` only for a connection the gateway is expected to hold open (it
 * resolves then with what came, `closed` false).
 */
function raw(data: string, options: { localAddress?: string; waitMs?: number; until?: (text: string) => boolean } = {}): Promise<{ text: string; closed: boolean }> {
  const { localAddress, waitMs, until } = options;
  return new Promise((resolve) => {
    const s: Socket = tcpConnect(localAddress === undefined ? { port: gwPort, host: '127.0.0.1' } : { port: gwPort, host: '127.0.0.1', localAddress });
    let text = '';
    let done = false;
    const finish = (closed: boolean): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      s.destroy();
      resolve({ text, closed });
    };
    const timer = waitMs === undefined ? undefined : setTimeout(() => finish(false), waitMs);
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (until?.(text) === true) finish(false);
    });
    s.on('error', () => undefined);
    s.on('close', () => finish(true));
    s.write(data);
  });
}

/** A complete Content-Length-framed answer has arrived. */
function framed(text: string): boolean {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const n = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
  return text.length >= end + 4 + n;
}

function headerNames(rawHeaders: string[]): string[] {
  return rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
}

function rawHeader(rawHeaders: string[], name: string): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) return rawHeaders[i + 1];
  return undefined;
}

function token(claims: Record<string, unknown>, options: { alg?: string; key?: string; expiresIn?: number | null } = {}): Promise<string> {
  const { alg = 'HS256', key = SECRET, expiresIn = 3600 } = options;
  let jwt = new SignJWT({ iss: 'https://idp.example/', aud: 'api', sub: 'alice', ...claims }).setProtectedHeader({ alg });
  if (expiresIn !== null) jwt = jwt.setExpirationTime(Math.floor(Date.now() / 1000) + expiresIn);
  return jwt.sign(new TextEncoder().encode(key));
}

describe('the cache, probed as an HTTP cache (RFC 9111)', () => {
  it('answers a repeated GET from the store with Age, and a HEAD from the cached GET with no body', async () => {
    const path = `/c/hit?${h('cache-control: max-age=60')}`;
    const miss = await get(path);
    expect([miss.status, miss.headers['x-cache']]).toEqual([200, 'MISS']);
    const hit = await get(path);
    expect([hit.status, hit.headers['x-cache'], hit.body]).toEqual([200, 'HIT', miss.body]);
    expect(Number(hit.headers['age'])).toBeGreaterThanOrEqual(0);
    const head = await raw(`HEAD /c/hit?${h('cache-control: max-age=60')} HTTP/1.1\r\nHost: 127.0.0.1:${gwPort}\r\n\r\n`, { until: (t) => t.includes('\r\n\r\n') });
    expect(head.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(head.text).toMatch(/\r\nx-cache: HIT\r\n/i);
    expect(head.text.slice(head.text.indexOf('\r\n\r\n') + 4)).toBe('');
    expect(hits.get('/hit')).toBe(1);
  });

  it('skips the lookup for a client no-cache (and stores the fresh answer), and skips the store for no-store', async () => {
    const path = '/c/client-cc';
    await get(path);
    const refreshed = await get(path, { headers: { 'cache-control': 'no-cache' } });
    expect([refreshed.headers['x-cache'], refreshed.body]).toEqual(['BYPASS', 'n=2 GET /client-cc']);
    const pragma = await get(path, { headers: { pragma: 'no-cache' } });
    expect([pragma.headers['x-cache'], pragma.body]).toEqual(['BYPASS', 'n=3 GET /client-cc']);
    expect((await get(path)).body).toBe('n=3 GET /client-cc');
    const noStore = await get(path, { headers: { 'cache-control': 'no-store' } });
    expect([noStore.headers['x-cache'], noStore.body]).toEqual(['BYPASS', 'n=4 GET /client-cc']);
    expect((await get(path)).body).toBe('n=3 GET /client-cc');
  });

  it('never stores what the upstream marks private, no-store or no-cache, nor a Set-Cookie, Vary: *, or an answer with no time left', async () => {
    const cases: Array<[string, string[]]> = [
      ['private', ['cache-control: private']],
      ['private-upper', ['Cache-Control: PRIVATE, max-age=60']],
      ['private-field', ['cache-control: private="x-user", max-age=60']],
      ['private-second-line', ['cache-control: max-age=60', 'cache-control: private']],
      ['no-store', ['cache-control: no-store, max-age=60']],
      ['no-cache', ['cache-control: no-cache, max-age=60']],
      ['set-cookie', ['cache-control: public, max-age=60', 'set-cookie: session=alice']],
      ['vary-star', ['cache-control: max-age=60', 'vary: *']],
      ['max-age-0', ['cache-control: max-age=0']],
      ['s-maxage-0', ['cache-control: s-maxage=0, max-age=60']],
      ['expires-past', ['expires: Wed, 21 Oct 2015 07:28:00 GMT']],
      ['expires-invalid', ['expires: 0']],
      ['age-over-lifetime', ['cache-control: max-age=60', 'age: 100']],
    ];
    for (const [name, lines] of cases) {
      const path = `/c/never-${name}?${h(...lines)}`;
      const first = await get(path);
      const second = await get(path);
      expect([first.headers['x-cache'], second.headers['x-cache']], name).toEqual(['MISS', 'MISS']);
      expect(hits.get(`/never-${name}`), name).toBe(2);
      // One user's cookie never goes to another: each answer carries its own upstream's.
      if (name === 'set-cookie') expect(second.headers['set-cookie']).toBe('session=alice');
    }
  });

  it('counts the upstream\'s Age against the lifetime and adds it to its own', async () => {
    const path = `/c/aged?${h('cache-control: max-age=60', 'age: 10')}`;
    await get(path);
    const hit = await get(path);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(Number(hit.headers['age'])).toBeGreaterThanOrEqual(10);
  });

  it('keeps one entry per Vary variant', async () => {
    const path = `/c/vary?${h('cache-control: max-age=60', 'vary: Accept-Language')}`;
    const en = await get(path, { headers: { 'accept-language': 'en' } });
    const fr = await get(path, { headers: { 'accept-language': 'fr' } });
    expect([en.headers['x-cache'], fr.headers['x-cache']]).toEqual(['MISS', 'MISS']);
    const enAgain = await get(path, { headers: { 'accept-language': 'en' } });
    expect([enAgain.headers['x-cache'], enAgain.body]).toEqual(['HIT', en.body]);
    const frAgain = await get(path, { headers: { 'accept-language': 'fr' } });
    expect([frAgain.headers['x-cache'], frAgain.body]).toEqual(['HIT', fr.body]);
  });

  it('stores the statuses the route lists (RFC 9111 heuristically cacheable ones), and no other', async () => {
    for (const status of [203, 204, 300, 301, 404, 405, 410, 414, 501]) {
      const path = `/c/status-${status}?status=${status}`;
      await get(path);
      const again = await get(path);
      expect([again.status, again.headers['x-cache']], String(status)).toEqual([status, 'HIT']);
    }
    for (const status of [302, 307, 500, 503]) {
      const path = `/c/status-${status}?status=${status}`;
      await get(path);
      const again = await get(path);
      expect([again.status, again.headers['x-cache']], String(status)).toEqual([status, 'MISS']);
    }
  });

  it('passes a Range request\'s 206 through without storing it, so a later GET gets the whole body', async () => {
    const path = '/c/ranged?mode=range&body=abcdefghij';
    const part = await get(path, { headers: { range: 'bytes=0-2' } });
    expect([part.status, part.body, part.headers['content-range']]).toEqual([206, 'abc', 'bytes 0-2/10']);
    expect(rawHeader(seenHeaders.get('/ranged')!, 'range')).toBe('bytes=0-2');
    const whole = await get(path);
    expect([whole.status, whole.headers['x-cache'], whole.body]).toEqual([200, 'MISS', 'abcdefghij']);
    // A hit answers the range from the stored 200, as nginx's proxy_cache does (cache-range.test.ts).
    const hit = await get(path, { headers: { range: 'bytes=0-2' } });
    expect([hit.status, hit.headers['x-cache'], hit.body, hit.headers['content-range']]).toEqual([206, 'HIT', 'abc', 'bytes 0-2/10']);
  });

  it('bypasses the cache for a request with Authorization, and never answers one from an entry stored for another caller', async () => {
    const path = '/c/authorized';
    const withAuth = await get(path, { headers: { authorization: 'Basic eDp5' } });
    expect(withAuth.headers['x-cache']).toBe('BYPASS');
    await get(path);
    expect((await get(path)).headers['x-cache']).toBe('HIT');
    const again = await get(path, { headers: { authorization: 'Basic eDp5' } });
    expect([again.headers['x-cache'], again.body]).toEqual(['BYPASS', 'n=3 GET /authorized']);
  });

  it('forwards unsafe methods on a cached URL every time (BYPASS), never answering them from the store', async () => {
    const path = '/c/unsafe';
    await get(path);
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'] as const) {
      const res = await get(path, { method, body: 'x' });
      expect([res.headers['x-cache'], res.body], method).toEqual(['BYPASS', `n=${hits.get('/unsafe')} ${method} /unsafe`]);
    }
    expect(hits.get('/unsafe')).toBe(5);
  });
});

describe('the cache as an HTTP cache: the audit\'s findings 3, 4, 6 and 11', () => {
  it('refuses at start a route whose cache statuses list 206 or 304 (exit 2, naming the key), since neither is ever stored', async () => {
    const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  up: { upstreams: ["http://127.0.0.1:1"] }
routes:
  - { path: /cpart/*, service: up, cache: { statuses: [200, 206, 304] } }
`)]);
    let stderr = '';
    proc.proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    expect(await proc.exited).toBe(2);
    expect(stderr).toMatch(/routes\[0\]\.cache\.statuses: 206 and 304 are never stored/);
  });
  it('keeps repeated query parameters in their order in the cache key (?x=2&x=1 is not ?x=1&x=2)', async () => {
    await get('/c/qorder?x=1&x=2&mode=echo');
    const other = await get('/c/qorder?x=2&x=1&mode=echo');
    expect((JSON.parse(other.body) as { url: string }).url).toBe('/qorder?x=2&x=1&mode=echo');
    await get('/c/qnames?a=1&b=2');
    expect((await get('/c/qnames?b=2&a=1')).headers['x-cache']).toBe('HIT');
  });

  it('answers a HEAD hit with the Content-Length a GET hit has', async () => {
    const target = `/c/head-length?${h('cache-control: max-age=60')}`;
    await get(target);
    const hit = await get(target);
    expect(hit.headers['x-cache']).toBe('HIT');
    const head = await raw(`HEAD ${target} HTTP/1.1\r\nHost: 127.0.0.1:${gwPort}\r\n\r\n`, { until: (t) => t.includes('\r\n\r\n') });
    expect(head.text).toMatch(/\r\nx-cache: HIT\r\n/i);
    expect(head.text).toMatch(new RegExp(`\\r\\ncontent-length: ${hit.headers['content-length']}\\r\\n`, 'i'));
  });

  it('answers a conditional GET that matches a fresh entry 304 from the store, as nginx proxy_cache does', async () => {
    const target = `/c/conditional?mode=etag&${h('cache-control: max-age=60', 'last-modified: Wed, 21 Oct 2015 07:28:00 GMT')}`;
    await get(target);
    for (const headers of [{ 'if-none-match': '"v1"' }, { 'if-none-match': 'W/"v1"' }, { 'if-modified-since': 'Wed, 21 Oct 2015 07:28:00 GMT' }]) {
      const res = await get(target, { headers });
      expect([res.status, res.headers['x-cache'], res.body, res.headers['etag']], JSON.stringify(headers)).toEqual([304, 'HIT', '', '"v1"']);
    }
    expect((await get(target, { headers: { 'if-none-match': '"v0"' } })).status).toBe(200);
    expect(hits.get('/conditional')).toBe(1);
  });

  it('answers a failing If-Match on a fresh entry 412 PRECONDITION_FAILED from the store', async () => {
    const target = `/c/if-match?mode=etag&${h('cache-control: max-age=60')}`;
    await get(target);
    const failed = await get(target, { headers: { 'if-match': '"zzz"' } });
    expect([failed.status, errorCode(failed.body)]).toEqual([412, 'PRECONDITION_FAILED']);
    expect((await get(target, { headers: { 'if-match': '"v1"' } })).status).toBe(200);
    expect(hits.get('/if-match')).toBe(1);
  });

  it('answers 504 to only-if-cached when nothing is stored, without going upstream (RFC 9111 §5.2.1.7)', async () => {
    const res = await get('/c/only-if-cached', { headers: { 'cache-control': 'only-if-cached' } });
    expect([res.status, errorCode(res.body), res.headers['x-cache']]).toEqual([504, 'GATEWAY_TIMEOUT', 'MISS']);
    expect(hits.get('/only-if-cached')).toBeUndefined();
    await get('/c/only-if-cached');
    const stored = await get('/c/only-if-cached', { headers: { 'cache-control': 'only-if-cached' } });
    expect([stored.status, stored.headers['x-cache']]).toEqual([200, 'HIT']);
  });

  it('invalidates the stored GET when a POST, PUT or DELETE on the same URL succeeds (RFC 9111 §4.4)', async () => {
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      const target = `/c/invalidate-${method}?${h('cache-control: max-age=60')}`;
      await get(target);
      expect((await get(target)).headers['x-cache']).toBe('HIT');
      expect((await get(target, { method, body: 'x' })).status).toBe(200);
      expect((await get(target)).headers['x-cache'], method).toBe('MISS');
    }
  });

  // (the audit's cache cases end here)
});

describe('bearer auth, probed as RFC 6750 and JWT suites do', () => {
  it('challenges a request without a token with Bearer realm and no error code, whatever the method or other scheme', async () => {
    for (const init of [{}, { headers: { authorization: 'Basic eDp5' } }, { headers: { cookie: 'access_token=x' } }] as const) {
      const res = await get('/a/x', init);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="rxgate"');
      expect(errorCode(res.body)).toBe('UNAUTHORIZED');
    }
    // A token in the query is not read (RFC 6750 §2.3 is opt-in; rxgate has no option for it).
    const query = await get(`/a/x?access_token=${await token({})}`);
    expect([query.status, query.headers['www-authenticate']]).toEqual([401, 'Bearer realm="rxgate"']);
    const head = await raw('HEAD /a/x HTTP/1.1\r\nHost: x\r\n\r\n', { until: (t) => t.includes('\r\n\r\n') });
    expect(head.text).toMatch(/^HTTP\/1\.1 401 /);
    expect(head.text).toMatch(/\r\nwww-authenticate: Bearer realm="rxgate"\r\n/i);
  });

  it('answers 401 invalid_token with a description for every bad token, the unsigned alg none included', async () => {
    const good = await token({});
    const [, payload] = good.split('.');
    const cases: Array<[string, string, string]> = [
      ['expired', await token({}, { expiresIn: -10 }), 'token expired'],
      ['not yet valid', await token({ nbf: Math.floor(Date.now() / 1000) + 600 }), 'token not yet valid'],
      ['wrong audience', await token({ aud: 'other' }), 'wrong token audience'],
      ['wrong issuer', await token({ iss: 'https://evil.example/' }), 'wrong token issuer'],
      ['no exp', await token({}, { expiresIn: null }), 'token lacks required claim exp'],
      ['other key', await token({}, { key: 'another-secret-of-at-least-thirty-two-bytes' }), 'bad token signature'],
      ['alg none', new UnsecuredJWT({ iss: 'https://idp.example/', aud: 'api', sub: 'alice' }).setExpirationTime('1h').encode(), 'token algorithm not allowed'],
      ['alg none, signature cut', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.`, 'token algorithm not allowed'],
      ['garbage', 'abc', 'malformed token'],
    ];
    for (const [name, jwt, description] of cases) {
      const res = await get('/a/x', { headers: { authorization: `Bearer ${jwt}` } });
      expect(res.status, name).toBe(401);
      expect(res.headers['www-authenticate'], name).toBe(`Bearer error="invalid_token", error_description="${description}"`);
      expect(errorCode(res.body), name).toBe('UNAUTHORIZED');
    }
    const empty = await get('/a/x', { headers: { authorization: 'Bearer ' } });
    expect([empty.status, empty.headers['www-authenticate']]).toEqual([401, 'Bearer error="invalid_token", error_description="malformed token"']);
  });

  it('answers 403 insufficient_scope naming the scope, and admits a good token under any case of "Bearer"', async () => {
    const res = await get('/ascope/x', { headers: { authorization: `Bearer ${await token({})}` } });
    expect(res.status).toBe(403);
    expect(res.headers['www-authenticate']).toBe('Bearer error="insufficient_scope", error_description="token lacks required scope: orders:read", scope="orders:read"');
    expect((await get('/ascope/x', { headers: { authorization: `Bearer ${await token({ scope: 'orders:read' })}` } })).status).toBe(200);
    expect((await get('/a/x', { headers: { authorization: `bearer ${await token({})}` } })).status).toBe(200);
  });

  it('forwards Authorization by default, and with stripAuthorization sends the claim header instead of one the client forged', async () => {
    const jwt = await token({});
    await get('/a/kept?mode=echo', { headers: { authorization: `Bearer ${jwt}` } });
    expect(rawHeader(seenHeaders.get('/kept')!, 'authorization')).toBe(`Bearer ${jwt}`);
    await get('/as/stripped?mode=echo', { headers: { authorization: `Bearer ${jwt}`, 'x-user': 'mallory' } });
    const seen = seenHeaders.get('/stripped')!;
    expect(headerNames(seen)).not.toContain('authorization');
    expect(headerNames(seen).filter((n) => n === 'x-user')).toHaveLength(1);
    expect(rawHeader(seen, 'x-user')).toBe('alice');
  });
});

describe('bearer auth with a public key', () => {
  it('refuses an HS256 token signed with the public key as the HMAC secret (algorithm confusion), and a critical header it does not know', async () => {
    const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
auth:
  publicKey: |
${RSA_PUBLIC_PEM.trim().split('\n').map((line) => `    ${line}`).join('\n')}
services:
  up: { upstreams: ["http://127.0.0.1:${(upstream.address() as AddressInfo).port}"] }
routes:
  - { path: /k/*, service: up, auth: required }
`)], { RXGATE_LOG_LEVEL: 'info' });
    const base = `http://127.0.0.1:${Number((await proc.logged('rxgate listening'))['port'])}`;
    try {
      const exp = Math.floor(Date.now() / 1000) + 600;
      const signed = (header: object, signer: (input: string) => string): string => {
        const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'a', exp })).toString('base64url')}`;
        return `${input}.${signer(input)}`;
      };
      const rs256 = (input: string): string => sign('sha256', Buffer.from(input), rsa.privateKey as KeyObject).toString('base64url');
      const status = async (jwt: string): Promise<[number, string | string[] | undefined]> => {
        const res = await request(`${base}/k/x`, { headers: { authorization: `Bearer ${jwt}` } });
        await res.body.dump();
        return [res.statusCode, res.headers['www-authenticate']];
      };
      expect((await status(signed({ alg: 'RS256' }, rs256)))[0]).toBe(200);
      for (const secret of [RSA_PUBLIC_PEM, RSA_PUBLIC_PEM.trim()]) {
        const confused = signed({ alg: 'HS256' }, (input) => createHmac('sha256', secret).update(input).digest('base64url'));
        expect(await status(confused)).toEqual([401, 'Bearer error="invalid_token", error_description="token algorithm not allowed"']);
      }
      // RFC 7515 §4.1.11: a "crit" extension the verifier does not understand makes the token invalid.
      expect((await status(signed({ alg: 'RS256', crit: ['x-unknown'], 'x-unknown': 1 }, rs256)))[0]).toBe(401);
    } finally {
      proc.proc.kill('SIGKILL');
    }
  });
});

describe('rate limiting, probed from outside', () => {
  it('answers 429 RATE_LIMITED with Retry-After and RateLimit-* headers, and counts HEAD and OPTIONS like GET', async () => {
    const first = await get('/rl/x');
    expect([first.status, first.headers['ratelimit-limit'], first.headers['ratelimit-remaining']]).toEqual([200, '2', '1']);
    const head = await get('/rl/x', { method: 'HEAD' });
    expect([head.status, head.headers['ratelimit-remaining']]).toEqual([200, '0']);
    for (const method of ['GET', 'OPTIONS', 'HEAD'] as const) {
      const over = await get('/rl/x', { method });
      expect(over.status, method).toBe(429);
      expect(Number(over.headers['retry-after']), method).toBeGreaterThanOrEqual(1);
      expect([over.headers['ratelimit-limit'], over.headers['ratelimit-remaining']], method).toEqual(['2', '0']);
      expect(Number(over.headers['ratelimit-reset']), method).toBeGreaterThan(0);
      if (method !== 'HEAD') expect(errorCode(over.body), method).toBe('RATE_LIMITED');
      else expect(over.body).toBe('');
    }
  });

  it('keeps one bucket per key, and a request without the key header falls back to the client address', async () => {
    expect((await get('/rlkey/x', { headers: { 'x-api-key': 'a' } })).status).toBe(200);
    expect((await get('/rlkey/x', { headers: { 'x-api-key': 'a' } })).status).toBe(429);
    expect((await get('/rlkey/x', { headers: { 'x-api-key': 'b' } })).status).toBe(200);
    expect((await get('/rlkey/x')).status).toBe(200);
    expect((await get('/rlkey/x')).status).toBe(429);
    expect((await get('/rlkey/x', { headers: { 'x-api-key': 'c' } })).status).toBe(200);
  });
});

describe('CORS edge cases', () => {
  it('answers an admitted preflight with credentials by reflecting the requested headers, with Vary on both inputs, and never forwards it', async () => {
    const before = hits.get('/pre') ?? 0;
    const res = await get('/cors/pre', {
      method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'X-Foo, Content-Type' },
    });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-allow-headers']).toBe('X-Foo, Content-Type');
    expect(String(res.headers['access-control-allow-methods'])).toContain('PUT');
    expect(String(res.headers['vary']).toLowerCase().split(/, */).sort()).toEqual(['access-control-request-headers', 'origin']);
    expect(hits.get('/pre') ?? 0).toBe(before);
  });

  it('refuses a preflight from another origin, or the opaque origin null, with 403, Vary: Origin and no CORS headers', async () => {
    for (const origin of ['https://evil.example', 'null', 'https://app.example.com.evil.example']) {
      const res = await get('/cors/pre', { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
      expect(res.status, origin).toBe(403);
      expect(res.headers['vary'], origin).toBe('Origin');
      expect(Object.keys(res.headers).filter((n) => n.startsWith('access-control-')), origin).toEqual([]);
    }
  });

  it('puts the CORS headers and Vary: Origin on every answer of the route, the 401 and 429 the gateway makes itself included', async () => {
    const ok = await get('/cors/x', { headers: { origin: ORIGIN } });
    expect([ok.status, ok.headers['access-control-allow-origin'], ok.headers['access-control-expose-headers'], ok.headers['vary']]).toEqual([200, ORIGIN, 'x-total', 'Origin']);
    const unauthorized = await get('/cors/x', { headers: { origin: ORIGIN, authorization: 'Bearer abc' } });
    expect([unauthorized.status, unauthorized.headers['access-control-allow-origin'], unauthorized.headers['vary']]).toEqual([401, ORIGIN, 'Origin']);
    const limited = await get('/cors/x', { headers: { origin: ORIGIN } });
    expect([limited.status, limited.headers['access-control-allow-origin'], limited.headers['access-control-allow-credentials'], limited.headers['vary']])
      .toEqual([429, ORIGIN, 'true', 'Origin']);
    for (const headers of [{}, { origin: 'https://evil.example' }]) {
      const other = await get('/cors/x', { headers });
      expect(other.headers['vary']).toBe('Origin');
      expect(other.headers['access-control-allow-origin']).toBeUndefined();
    }
  });

  it('answers any origin with * and no Vary on an open route, replacing the upstream\'s own CORS headers', async () => {
    const res = await get(`/cany/x?${h('access-control-allow-origin: https://evil.example', 'access-control-allow-credentials: true', 'vary: Accept')}`, { headers: { origin: 'https://z.example' } });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers['vary']).toBe('Accept');
    const pre = await get('/cany/x', { method: 'OPTIONS', headers: { origin: 'https://z.example', 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'x-a' } });
    // The regression: `*` alone, which the Fetch standard does not let cover Authorization.
    expect([pre.status, pre.headers['access-control-allow-origin'], pre.headers['access-control-allow-headers'], pre.headers['vary']]).toEqual([204, '*', '*, authorization', undefined]);
  });

  it('names the answer\'s headers for exposeHeaders: ["*"] with credentials, where a browser reads * as a header named "*"', async () => {
    const res = await get(`/cexp/x?${h('x-total: 7', 'x-page: 2')}`, { headers: { origin: ORIGIN } });
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    const exposed = String(res.headers['access-control-expose-headers']).split(', ');
    expect(exposed).toEqual(expect.arrayContaining(['x-total', 'x-page', 'x-request-id']));
    expect(exposed).not.toContain('*');
    const refused = await get('/cexp/x', { headers: { origin: ORIGIN, authorization: 'Bearer abc' } });
    expect(refused.status).toBe(401);
    expect(String(refused.headers['access-control-expose-headers']).split(', ')).toEqual(expect.arrayContaining(['www-authenticate', 'x-request-id']));
    expect((await get('/cexp/x', { headers: { origin: 'https://evil.example' } })).headers['access-control-expose-headers']).toBeUndefined();
  });

  it.skipIf(skipWithoutChromium('blackbox-http browser case'))('lets a page read an exposed header with credentials: include, in Chromium', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${pageOrigin}/`);
      // localhost is another origin than the page's 127.0.0.1.
      const target = `http://localhost:${gwPort}/cexp/browser?${h('x-total: 7')}`;
      const seen = await page.evaluate(async (url) => {
        const res = await fetch(url, { credentials: 'include' });
        return `${res.status} ${res.headers.get('x-total')}`;
      }, target);
      expect(seen).toBe('200 7');
    } finally {
      await browser.close();
    }
  });
});

describe('edge refusals: smuggling, sizes, heads uWS will not hand over', () => {
  it('refuses repeated Content-Length and a Transfer-Encoding other than chunked with 400 and a close, and closes on Content-Length with Transfer-Encoding, forwarding none of them', async () => {
    const before = hits.get('/smuggle') ?? 0;
    const dup = await raw('POST /p/smuggle HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc');
    expect(dup.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(dup.closed).toBe(true);
    const te = await raw('POST /p/smuggle HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n');
    expect(te.text).toMatch(/^HTTP\/1\.1 400 /);
    expect(te.closed).toBe(true);
    for (const head of ['Content-Length: 3\r\nTransfer-Encoding: chunked', 'Content-Length: -1', 'Content-Length: +3']) {
      const res = await raw(`POST /p/smuggle HTTP/1.1\r\nHost: x\r\n${head}\r\n\r\n0\r\n\r\n`);
      expect([res.text, res.closed], head).toEqual(['', true]);
    }
    expect(hits.get('/smuggle') ?? 0).toBe(before);
  });

  it('answers 413 to a body over maxBodySize, by Content-Length and chunked alike, without forwarding it', async () => {
    for (const head of ['Content-Length: 20\r\n\r\n01234567890123456789', 'Transfer-Encoding: chunked\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n']) {
      const res = await raw(`POST /small/body HTTP/1.1\r\nHost: x\r\n${head}`, { until: framed });
      expect(res.text, head).toMatch(/^HTTP\/1\.1 413 /);
      expect(errorCode(res.text.slice(res.text.indexOf('\r\n\r\n') + 4)), head).toBe('PAYLOAD_TOO_LARGE');
    }
    expect(hits.get('/body')).toBeUndefined();
  });

  it('holds, and never forwards, a request without Host, in absolute form, or with an obs-folded header (uWS 20.30 decides these)', async () => {
    for (const head of ['GET /p/held HTTP/1.1\r\n\r\n', 'GET http://x/p/held HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /p/held HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n']) {
      const res = await raw(head, { waitMs: 500 });
      expect(res.text, head).toBe('');
    }
    expect(hits.get('/held')).toBeUndefined();
  });

  it('answers 414 for a target over maxUrlLength and 431 for a head over maxHeaderBytes', async () => {
    const long = await get(`/p/${'a'.repeat(600)}?q=${'b'.repeat(600)}`);
    expect([long.status, errorCode(long.body)]).toEqual([414, 'URI_TOO_LONG']);
    const big = await get('/p/too-big', { headers: { 'x-big': 'z'.repeat(3100) } });
    expect([big.status, errorCode(big.body)]).toEqual([431, 'HEADERS_TOO_LARGE']);
    expect(hits.get('/too-big')).toBeUndefined();
  });
});

describe('proxy headers', () => {
  it('reads the client behind a trusted proxy from X-Forwarded-For (repeated lines joined), appends the proxy, and ignores Forwarded and X-Real-IP', async () => {
    const viaProxy = await raw('GET /p/xff?mode=echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\nX-Forwarded-For: 203.0.113.5\r\n' +
      'Forwarded: for=10.9.9.9\r\nX-Real-IP: 10.9.9.9\r\n\r\n', { localAddress: '127.0.0.2', until: (t) => t.includes('\r\n0\r\n\r\n') });
    expect(viaProxy.text).toMatch(/^HTTP\/1\.1 200 /);
    const seen = seenHeaders.get('/xff')!;
    expect(rawHeader(seen, 'x-forwarded-for')).toBe('10.9.9.9, 203.0.113.5, 127.0.0.2');
    expect(rawHeader(seen, 'x-real-ip')).toBe('203.0.113.5');
    // The allow list sees the same client: the forged left entry gets nowhere.
    const allowed = await raw('GET /ipf/x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.5, 10.9.9.9\r\n\r\n', { localAddress: '127.0.0.2', until: (t) => t.includes('\r\n\r\n') });
    expect(allowed.text).toMatch(/^HTTP\/1\.1 200 /);
    for (const [local, xff] of [['127.0.0.2', '10.9.9.9, 203.0.113.5'], ['127.0.0.3', '10.9.9.9'], ['127.0.0.2', '10.9.9.9, unknown']]) {
      const refused = await raw(`GET /ipf/x HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ${xff}\r\n\r\n`, { localAddress: local, until: framed });
      expect(refused.text, `${local} ${xff}`).toMatch(/^HTTP\/1\.1 403 /);
    }
  });

  it('drops Proxy-Authorization, TE and the headers Connection names on the way up, and those the upstream\'s Connection names on the way down', async () => {
    await raw('GET /p/hop?mode=echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nProxy-Authorization: Basic eDp5\r\nTE: trailers\r\nX-Kept: 1\r\n\r\n',
      { until: (t) => t.includes('\r\n0\r\n\r\n') });
    const names = headerNames(seenHeaders.get('/hop')!);
    for (const name of ['x-hop', 'proxy-authorization', 'te']) expect(names, name).not.toContain(name);
    expect(names).toContain('x-kept');
    const res = await get(`/p/hop-down?${h('connection: x-foo', 'x-foo: 1', 'trailer: x-sum', 'proxy-authenticate: Basic', 'x-kept: 1')}`);
    for (const name of ['x-foo', 'trailer', 'proxy-authenticate']) expect(res.headers[name], name).toBeUndefined();
    expect(res.headers['x-kept']).toBe('1');
  });

  it('drops the upstream\'s trailers but delivers the body whole and terminated', async () => {
    const res = await raw('GET /p/trailers?mode=trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n', { until: (t) => t.includes('\r\n0\r\n\r\n') });
    expect(res.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(res.text.slice(res.text.indexOf('\r\n\r\n') + 4)).toBe('3\r\nabc\r\n0\r\n\r\n');
  });
});

describe('timeouts and broken upstream bodies', () => {
  it('answers 504 GATEWAY_TIMEOUT with the JSON body, for the route\'s total timeout and the service\'s own', async () => {
    const total = await get('/t/x?mode=hang');
    expect([total.status, errorCode(total.body)]).toEqual([504, 'GATEWAY_TIMEOUT']);
    const service = await get('/p/x?mode=hang');
    expect([service.status, errorCode(service.body)]).toEqual([504, 'GATEWAY_TIMEOUT']);
  });

  it('never passes off a body that ends before its Content-Length, or a chunked one cut before its last chunk, as complete', async () => {
    const short = await raw('GET /p/short?mode=short HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(short.text).toMatch(/^HTTP\/1\.1 200 [^]*\r\ncontent-length: 100\r\n/i);
    expect(short.text.slice(short.text.indexOf('\r\n\r\n') + 4)).toBe('0123456789');
    expect(short.closed).toBe(true);
    const cut = await raw('GET /p/cut?mode=chunkcut HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(cut.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(cut.text).not.toContain('\r\n0\r\n\r\n');
    expect(cut.closed).toBe(true);
    await expect(request(`${gw}/p/short2?mode=short`).then((r) => r.body.text())).rejects.toThrow();
  });

  it('sends exactly Content-Length bytes when the upstream sends more, and keeps serving on that connection', async () => {
    const res = await raw('GET /p/long?mode=long HTTP/1.1\r\nHost: x\r\n\r\n', { until: framed });
    expect(res.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(res.text.slice(res.text.indexOf('\r\n\r\n') + 4)).toBe('01234');
    expect((await get('/p/after-long')).status).toBe(200);
  });
});

describe('upstream answers a strict parser refuses', () => {
  it('answers 502 to an upstream head that two parsers could frame differently, or that is malformed', async () => {
    for (const name of ['cl-te', 'two-cl', 'negative-cl', 'obs-fold', 'space-before-colon', 'control-byte']) {
      const res = await get(`/raw/${name}`);
      expect(res.status, name).toBe(502);
      expect(errorCode(res.body), name).toBe('BAD_GATEWAY');
    }
  });

  it('drops a 103 before the final answer, and relays a close-delimited body whole, chunked', async () => {
    const hinted = await raw('GET /raw/early-hints HTTP/1.1\r\nHost: x\r\n\r\n', { until: framed });
    expect(hinted.text).toMatch(/^HTTP\/1\.1 200 /);
    expect(hinted.text.slice(hinted.text.indexOf('\r\n\r\n') + 4)).toBe('ok');
    const closeDelimited = await raw('GET /raw/close-delimited HTTP/1.1\r\nHost: x\r\n\r\n', { until: (t) => t.includes('\r\n0\r\n\r\n') });
    expect(closeDelimited.text).toMatch(/^HTTP\/1\.1 200 [^]*\r\ntransfer-encoding: chunked\r\n/i);
    expect(closeDelimited.text.slice(closeDelimited.text.indexOf('\r\n\r\n') + 4)).toBe('1e\r\nread until the upstream closes\r\n0\r\n\r\n');
  });
});
