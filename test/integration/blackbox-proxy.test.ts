import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../support/rxgate-process.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';
import { closed, connect, echo, wsUrl } from '../support/ws.ts';
import { WebSocketServer } from 'ws';

/**
 * A black-box audit: rxgate started as users start it (the CLI on a YAML
 * file, from dist/ when the run found it current, else the sources through
 * the loader (test/support/cli-from.ts), as drain.test.ts does), probed over HTTP, raw sockets and WebSocket the way suites written
 * for nginx, Envoy or Traefik probe a reverse proxy. Upstreams are written
 * here: a node:http one that reports what it received, and a node:net one
 * for exact request-line bytes and answers node:http cannot send.
 */

const dir = mkdtempSync(join(tmpdir(), 'rxgate-blackbox-'));
const RUN = join(dir, 'run.mjs');
writeFileSync(RUN, `import { runCli } from ${JSON.stringify(CLI.cli)};
await runCli(process.argv.slice(2), { module: ${JSON.stringify(CLI.index)} });
`);

let up: TestUpstream;
let raw: TcpServer;
/** Request lines the raw upstream received, latin1 (one char per byte). */
const rawLines: string[] = [];
let child: ChildProcess;
let exited: Promise<number | null>;
let gw = '';
let admin = '';
let gwPort = 0;
/** The targets of the WebSocket handshakes the upstream accepted. */
const wsTargets: string[] = [];
/** Requests the /hold endpoint holds until released. */
const held: Array<() => void> = [];
let heldArrived: () => void = () => {};
/** Set by the SSE test: resolves when the client got the first event. */
let sseFirstSeen: Promise<void> = Promise.resolve();

function sha(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

function upstreamHandler(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const url = req.url!;
    const body = Buffer.concat(chunks);
    if (url.startsWith('/status/')) {
      const code = Number(url.slice(8));
      res.writeHead(code, { 'x-upstream': 'yes' });
      res.end(code === 204 || code === 304 ? undefined : 'body');
    } else if (url === '/cookies') {
      res.setHeader('set-cookie', ['a=1; Path=/', 'b=2, c=3; Expires=Wed, 21 Oct 2026 07:28:00 GMT']);
      res.setHeader('x-dup', ['one', 'two']);
      res.end('ok');
    } else if (url === '/hop') {
      res.writeHead(200, {
        connection: 'x-secret, keep-alive', 'x-secret': 's', 'keep-alive': 'timeout=5', 'proxy-authenticate': 'Basic',
        upgrade: 'h2c', 'proxy-connection': 'keep-alive', 'x-kept': 'y',
      });
      res.end('hop');
    } else if (url === '/slow') {
      const t = setTimeout(() => res.end('late'), 5000);
      res.on('close', () => clearTimeout(t));
    } else if (url === '/hold') {
      held.push(() => res.end('released'));
      heldArrived();
    } else if (url === '/reset') {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 120), () => setImmediate(() => req.socket.destroy()));
    } else if (url === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: first\n\n');
      void sseFirstSeen.then(() => res.end('data: last\n\n'));
    } else if (url === '/json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ filler: 'x'.repeat(4000) }));
    } else {
      const json = JSON.stringify({ method: req.method, url, headers: req.rawHeaders, length: body.length, sha: sha(body) });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
      res.end(json);
    }
  });
}

/** Starts the CLI on `yaml` and resolves once both listeners are up. */
function startCli(yaml: string): Promise<void> {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  child = spawn(process.execPath, [...CLI.node, RUN, '--config', file], {
    env: { ...process.env, RXGATE_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const main = /"port":(\d+)[^\n]*"msg":"rxgate listening"/.exec(out);
      const adm = /"port":(\d+)[^\n]*"msg":"rxgate admin listening"/.exec(out);
      if (main !== null && adm !== null && gw === '') {
        gwPort = Number(main[1]);
        gw = `http://127.0.0.1:${gwPort}`;
        admin = `http://127.0.0.1:${adm[1]}`;
        resolve();
      }
    });
    void exited.then((code) => reject(new Error(`rxgate exited (${code}) before listening: ${err}`)));
  });
}

beforeAll(async () => {
  up = await startUpstream(upstreamHandler);
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  up.server.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
    wsTargets.push(req.url!);
    ws.on('message', (m, binary) => {
      const text = m.toString();
      if (text.startsWith('close:')) ws.close(Number(text.slice(6)), 'bye');
    });
    echo(ws);
  }));
  raw = createTcpServer((s) => {
    let buf = '';
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      const line = buf.slice(0, buf.indexOf('\r\n'));
      buf = '';
      rawLines.push(line);
      if (line.includes(' /s101 ')) s.write('HTTP/1.1 101 Switching Protocols\r\nContent-Length: 0\r\n\r\n');
      else s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    });
  });
  await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
  const dead = createTcpServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const deadPort = (dead.address() as AddressInfo).port;
  await new Promise<void>((r) => dead.close(() => r()));
  await startCli(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
limits: { maxRequestsPerClient: 3, maxUrlLength: 3500, maxHeaderBytes: 3072 }
services:
  echo: { upstreams: ["${up.url}"], timeout: 5s }
  raw: { upstreams: ["http://127.0.0.1:${(raw.address() as AddressInfo).port}"], retry: false }
  down: { upstreams: ["http://127.0.0.1:${deadPort}"], panic: false, retry: false, circuitBreaker: false }
routes:
  - { path: /p/*, service: echo, rewrite: { stripPrefix: /p } }
  - { path: /get-only, service: echo, methods: [GET] }
  - { path: /slow/*, service: echo, rewrite: { stripPrefix: /slow }, timeouts: { total: 300ms }, retry: false }
  - { path: /small/*, service: echo, rewrite: { stripPrefix: /small }, maxBodySize: 16 }
  - { path: /lim/*, service: echo, rewrite: { stripPrefix: /lim }, rateLimit: { limit: 1, window: 1m } }
  - { path: /cors/*, service: echo, rewrite: { stripPrefix: /cors }, cors: { origins: ["https://app.example.com"] } }
  - { path: /gz/*, service: echo, rewrite: { stripPrefix: /gz }, compression: true }
  - { path: /ws/*, service: echo, rewrite: { stripPrefix: /ws }, websocket: true }
  - { path: /raw/*, service: raw, rewrite: { stripPrefix: /raw } }
  - { path: /down/*, service: down }
`);
}, 30_000);

afterAll(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const release of held.splice(0)) release();
  await up?.close();
  await new Promise<void>((r) => (raw === undefined ? r() : raw.close(() => r())));
  rmSync(dir, { recursive: true, force: true });
});

interface Echoed { method: string; url: string; headers: string[]; length: number; sha: string }

async function echoed(path: string, init: Parameters<typeof request>[1] = {}): Promise<Echoed & { status: number; responseHeaders: Record<string, string | string[] | undefined> }> {
  const res = await request(gw + path, init);
  const text = await res.body.text();
  return { ...(JSON.parse(text) as Echoed), status: res.statusCode, responseHeaders: res.headers };
}

/** The request headers the upstream got, names lower-cased, repeated names' values in a list. */
function headersOf(e: Echoed): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < e.headers.length; i += 2) {
    const name = e.headers[i]!.toLowerCase();
    out.set(name, [...(out.get(name) ?? []), e.headers[i + 1]!]);
  }
  return out;
}

/**
 * Sends `first` on a new connection, waits for its response head, then
 * sends `second` and collects until the second response is complete: what
 * came between the first head and the second status line is what the
 * first response carried as body.
 */
function twoOnOneConnection(first: string, second: string): Promise<{ firstHead: string; between: string; secondHead: string }> {
  return new Promise((resolve, reject) => {
    const s: Socket = tcpConnect(gwPort, '127.0.0.1');
    let buf = '';
    let sentSecond = false;
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const firstEnd = buf.indexOf('\r\n\r\n');
      if (firstEnd === -1) return;
      if (!sentSecond) {
        sentSecond = true;
        s.write(second);
      }
      const secondStart = buf.indexOf('HTTP/1.1 ', firstEnd);
      if (secondStart === -1) return;
      const secondEnd = buf.indexOf('\r\n\r\n', secondStart);
      if (secondEnd === -1) return;
      const secondHead = buf.slice(secondStart, secondEnd);
      const n = Number(/content-length: *(\d+)/i.exec(secondHead)?.[1] ?? 0);
      if (buf.length < secondEnd + 4 + n) return;
      s.destroy();
      resolve({ firstHead: buf.slice(0, firstEnd), between: buf.slice(firstEnd + 4, secondStart), secondHead });
    });
    s.write(first);
  });
}

/**
 * One request on a new connection, as raw bytes (for headers undici will not
 * send: Connection, Upgrade, Expect…). With a `body`, it follows the head at
 * once, or after the interim 100 when the head asks for one. Resolves with
 * the final response (Content-Length framed) and any interim status lines.
 */
function rawRequest(head: string | Buffer, body?: Buffer): Promise<{ head: string; body: string; interim: string[] }> {
  return new Promise((resolve, reject) => {
    const s: Socket = tcpConnect(gwPort, '127.0.0.1');
    const waitContinue = body !== undefined && /\r\nexpect: *100-continue/i.test(head.toString('latin1'));
    let buf = '';
    const interim: string[] = [];
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const h = buf.slice(0, end);
        if (/^HTTP\/1\.1 1\d\d /.test(h)) {
          interim.push(h);
          buf = buf.slice(end + 4);
          if (waitContinue) s.write(body!);
          continue;
        }
        const n = Number(/\r\ncontent-length: *(\d+)/i.exec(h)?.[1] ?? 0);
        if (buf.length < end + 4 + n) return;
        s.destroy();
        resolve({ head: h, body: buf.slice(end + 4, end + 4 + n), interim });
        return;
      }
    });
    s.write(head);
    if (body !== undefined && !waitContinue) s.write(body);
  });
}

function expectErrorBody(text: string, code: string): void {
  const body = JSON.parse(text) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
}

describe('rxgate as a reverse proxy, probed from outside', () => {
  it('forwards method, path, query and body as the client sent them, after resolving dot segments', async () => {
    const cases: Array<[string, string]> = [
      ['/p/a/b?x=1&x=2&y=%2F&z=a+b', '/a/b?x=1&x=2&y=%2F&z=a+b'],
      ['/p/caf%C3%A9/%E2%82%AC?q=%E2%82%AC', '/caf%C3%A9/%E2%82%AC?q=%E2%82%AC'],
      ['/p/a/../b', '/b'],
      ['/p/a/%2e%2e/b', '/b'],
      ['/p//a//b/', '/a/b/'],
      ['/p/a%20b;v=1', '/a%20b;v=1'],
      [`/p/long/${'x'.repeat(3000)}`, `/long/${'x'.repeat(3000)}`],
    ];
    for (const [sent, expected] of cases) {
      const e = await echoed(sent);
      expect(e.url, sent).toBe(expected);
    }
    const body = Buffer.alloc(300_000, 7);
    for (let i = 0; i < body.length; i += 997) body[i] = i & 0xff;
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      const e = await echoed('/p/upload', { method, body });
      expect([e.method, e.length, e.sha]).toEqual([method, body.length, sha(body)]);
    }
  });

  it('forwards a raw UTF-8 query byte for byte, as it does a raw UTF-8 path, and refuses one that is not UTF-8', async () => {
    // The regression: undici refused the query's characters above U+00FF, a
    // 502 that never reached the upstream and that the breaker counted, so
    // two or three such requests opened it for every client.
    rawLines.length = 0;
    for (let i = 0; i < 6; i++) {
      const res = await rawRequest('GET /raw/q/K\u00f6ln?city=K\u00f6ln&sym=\u20ac HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(res.head).toMatch(/^HTTP\/1\.1 200 /);
    }
    const utf8 = (text: string): string => Buffer.from(text, 'utf8').toString('latin1');
    expect(rawLines).toHaveLength(6);
    expect(rawLines[0]).toBe(`GET /q/${utf8('Köln')}?city=${utf8('Köln')}&sym=${utf8('€')} HTTP/1.1`);
    const bad = await rawRequest(Buffer.concat([Buffer.from('GET /raw/q?x='), Buffer.from([0xff, 0xfe]), Buffer.from(' HTTP/1.1\r\nHost: x\r\n\r\n')]));
    expect(bad.head).toMatch(/^HTTP\/1\.1 400 /);
    expectErrorBody(bad.body, 'BAD_REQUEST');
    expect(rawLines).toHaveLength(6);
  });

  it('appends to X-Forwarded-For, sets X-Forwarded-Proto/-Host and X-Real-IP, and gives the upstream its own Host', async () => {
    const e = await echoed('/p/h', {
      headers: {
        'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example',
        'x-real-ip': '198.51.100.1', host: 'api.example.com',
      },
    });
    const h = headersOf(e);
    expect(h.get('host')).toEqual([`127.0.0.1:${up.port}`]);
    expect(h.get('x-forwarded-for')).toEqual(['203.0.113.9, 127.0.0.1']);
    expect(h.get('x-forwarded-proto')).toEqual(['http']);
    expect(h.get('x-forwarded-host')).toEqual(['api.example.com']);
    expect(h.get('x-real-ip')).toEqual(['127.0.0.1']);
    expect(h.get('x-request-id')?.[0]).toBe(e.responseHeaders['x-request-id']);
  });

  it('strips hop-by-hop headers both ways, those named in Connection too', async () => {
    const sent = await rawRequest('GET /p/h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n' +
      'Keep-Alive: 300\r\nTE: trailers\r\nUpgrade: foo\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\nX-Kept: 1\r\n\r\n');
    expect(sent.head).toMatch(/^HTTP\/1\.1 200 /);
    const h = headersOf(JSON.parse(sent.body) as Echoed);
    for (const name of ['x-secret', 'keep-alive', 'te', 'upgrade', 'proxy-authorization', 'proxy-connection']) expect(h.has(name), name).toBe(false);
    expect(h.get('x-kept')).toEqual(['1']);
    const res = await request(`${gw}/p/hop`);
    await res.body.text();
    for (const name of ['x-secret', 'keep-alive', 'proxy-authenticate', 'upgrade', 'proxy-connection']) expect(res.headers[name], name).toBeUndefined();
    expect(res.headers['x-kept']).toBe('y');
  });

  it('keeps repeated response headers and each Set-Cookie on its own line', async () => {
    const res = await request(`${gw}/p/cookies`);
    await res.body.text();
    expect(res.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2, c=3; Expires=Wed, 21 Oct 2026 07:28:00 GMT']);
    expect(res.headers['x-dup']).toEqual(['one', 'two']);
  });

  it('sends no body with 204, 304 and HEAD answers, the upstream\'s and its own errors alike', async () => {
    for (const status of [204, 304]) {
      const r = await twoOnOneConnection(`GET /p/status/${status} HTTP/1.1\r\nHost: x\r\n\r\n`, 'GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(r.firstHead).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      expect(r.between).toBe('');
    }
    const json = await twoOnOneConnection('HEAD /p/json HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(json.firstHead).toMatch(/^HTTP\/1\.1 200 /);
    expect(json.between).toBe('');
    // The regression: an error answer to HEAD carried its JSON body, which a
    // client reads as the start of the next response on the connection.
    for (const target of ['/nothing', '/p/%zz', '/slow/slow']) {
      const r = await twoOnOneConnection(`HEAD ${target} HTTP/1.1\r\nHost: x\r\n\r\n`, 'GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(r.firstHead).toMatch(/^HTTP\/1\.1 (404|400|504) /);
      expect(r.between, target).toBe('');
      expect(r.secondHead).toMatch(/^HTTP\/1\.1 404 /);
    }
  });

  it('answers Expect: 100-continue and forwards the body, never the Expect header', async () => {
    const body = Buffer.alloc(50_000, 1);
    const res = await rawRequest(`POST /p/upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`, body);
    expect(res.interim).toEqual([expect.stringMatching(/^HTTP\/1\.1 100 /)]);
    expect(res.head).toMatch(/^HTTP\/1\.1 200 /);
    const e = JSON.parse(res.body) as Echoed;
    expect([e.length, e.sha]).toEqual([body.length, sha(body)]);
    expect(headersOf(e).has('expect')).toBe(false);
  });

  it('streams chunked uploads whole', async () => {
    const parts = [Buffer.alloc(70_000, 3), Buffer.alloc(1, 4), Buffer.alloc(200_000, 5)];
    const e = await echoed('/p/upload', {
      method: 'POST',
      body: Readable.from(parts),
    });
    expect([e.length, e.sha]).toEqual([270_001, sha(Buffer.concat(parts))]);
  });

  it('answers 502 for a refused upstream, 504 for a slow one, and 503 NO_HEALTHY_UPSTREAM with Retry-After once every instance is out', async () => {
    const refused = await request(`${gw}/down/x`);
    expect(refused.statusCode).toBe(502);
    expectErrorBody(await refused.body.text(), 'BAD_GATEWAY');
    const none = await request(`${gw}/down/x`);
    expect(none.statusCode).toBe(503);
    expectErrorBody(await none.body.text(), 'NO_HEALTHY_UPSTREAM');
    expect(Number(none.headers['retry-after'])).toBeGreaterThan(0);
    const slow = await request(`${gw}/slow/slow`);
    expect(slow.statusCode).toBe(504);
    expectErrorBody(await slow.body.text(), 'GATEWAY_TIMEOUT');
  });

  it('never passes off a body the upstream cut short as complete', async () => {
    const res = await request(`${gw}/p/reset`);
    expect(res.statusCode).toBe(200);
    await expect(res.body.arrayBuffer()).rejects.toThrow();
  });

  it('answers 404, 405 with Allow, 400, 413, 414 and 431 with the JSON error body', async () => {
    const cases: Array<[string, Parameters<typeof request>[1], number, string]> = [
      ['/nothing', {}, 404, 'ROUTE_NOT_FOUND'],
      ['/get-only', { method: 'POST', body: 'x' }, 405, 'METHOD_NOT_ALLOWED'],
      ['/get-only', { method: 'OPTIONS' }, 405, 'METHOD_NOT_ALLOWED'],
      ['/p/%zz', {}, 400, 'BAD_REQUEST'],
      ['/p/a%2Fb', {}, 400, 'BAD_REQUEST'],
      ['/small/x', { method: 'POST', body: 'x'.repeat(17) }, 413, 'PAYLOAD_TOO_LARGE'],
      [`/p/${'y'.repeat(3600)}`, {}, 414, 'URI_TOO_LONG'],
      ['/p/x', { headers: { 'x-big': 'z'.repeat(3200) } }, 431, 'HEADERS_TOO_LARGE'],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await request(gw + path, init);
      expect(res.statusCode, path.slice(0, 40)).toBe(status);
      expect(res.headers['content-type']).toBe('application/json');
      expectErrorBody(await res.body.text(), code);
      if (status === 405) expect(res.headers['allow']).toBe('GET, HEAD');
    }
  });

  it('sends Retry-After with every 429: over the rate limit, and over the requests in flight per client', async () => {
    await (await request(`${gw}/lim/x`)).body.text();
    const limited = await request(`${gw}/lim/x`);
    expect(limited.statusCode).toBe(429);
    expectErrorBody(await limited.body.text(), 'RATE_LIMITED');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);

    let arrived = 0;
    const three = new Promise<void>((resolve) => {
      heldArrived = () => { if (++arrived === 3) resolve(); };
    });
    const holding = [1, 2, 3].map(() => request(`${gw}/p/hold`).then((r) => r.body.text()));
    try {
      await three;
      const over = await request(`${gw}/p/x`);
      expect(over.statusCode).toBe(429);
      expectErrorBody(await over.body.text(), 'TOO_MANY_IN_FLIGHT');
      expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await three;
      for (const release of held.splice(0)) release();
      expect(await Promise.all(holding)).toEqual(['released', 'released', 'released']);
    }
  });

  it('answers CONNECT and TRACE 405 at once, and a burst of them leaves the service serving (its breaker closed)', async () => {
    for (let i = 0; i < 6; i++) {
      const res = await rawRequest(`${i % 2 === 0 ? 'CONNECT' : 'TRACE'} /p/x HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(res.head).toMatch(/^HTTP\/1\.1 405 /);
      expect(res.head).toMatch(/\r\nallow: GET, HEAD, POST/i);
      expectErrorBody(res.body, 'METHOD_NOT_ALLOWED');
    }
    expect((await echoed('/p/after-connect')).status).toBe(200);
  });

  it('answers 400 to a header value undici will not send (DEL), and a burst of them leaves the service serving', async () => {
    // The regression: undici refused it before sending, a retryable 502 that
    // the breaker counted; three such requests opened it for every client.
    for (let i = 0; i < 6; i++) {
      const res = await rawRequest(Buffer.concat([Buffer.from('GET /p/x HTTP/1.1\r\nHost: x\r\nX-A: a'), Buffer.from([0x7f]), Buffer.from('b\r\n\r\n')]));
      expect(res.head).toMatch(/^HTTP\/1\.1 400 /);
      expectErrorBody(res.body, 'BAD_REQUEST');
    }
    expect((await echoed('/p/after-del')).status).toBe(200);
  });

  it('answers a CORS preflight itself and refuses other origins', async () => {
    const ok = await request(`${gw}/cors/x`, {
      method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT' },
    });
    expect(ok.statusCode).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(String(ok.headers['access-control-allow-methods'])).toContain('PUT');
    await ok.body.text();
    const bad = await request(`${gw}/cors/x`, {
      method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' },
    });
    expect(bad.statusCode).toBe(403);
    expect(bad.headers['access-control-allow-origin']).toBeUndefined();
    await bad.body.text();
  });

  it('compresses with gzip only for a client that accepts it', async () => {
    const gz = await request(`${gw}/gz/json`, { headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(String(gz.headers['vary'])).toMatch(/accept-encoding/i);
    expect(JSON.parse(gunzipSync(Buffer.from(await gz.body.arrayBuffer())).toString()).filler).toHaveLength(4000);
    for (const ae of [undefined, 'gzip;q=0, identity']) {
      const plain = await request(`${gw}/gz/json`, ae === undefined ? {} : { headers: { 'accept-encoding': ae } });
      expect(plain.headers['content-encoding']).toBeUndefined();
      expect(JSON.parse(await plain.body.text()).filler).toHaveLength(4000);
    }
  });

  it('streams an event stream event by event, not once it ends', async () => {
    let seen: () => void = () => {};
    sseFirstSeen = new Promise((resolve) => { seen = resolve; });
    const res = await request(`${gw}/p/sse`);
    expect(res.headers['content-type']).toBe('text/event-stream');
    let text = '';
    for await (const chunk of res.body) {
      text += chunk.toString();
      // The upstream sends the rest only once the first event is here.
      if (text.includes('data: first\n\n')) seen();
    }
    expect(text).toBe('data: first\n\ndata: last\n\n');
  });

  it('relays WebSocket messages both ways and the upstream\'s close code', async () => {
    const ws = await connect(wsUrl(`${gw}/ws/chat`));
    const got: string[] = [];
    const two = new Promise<void>((resolve) => ws.on('message', (m, binary) => {
      got.push(`${binary ? 'bin' : 'text'}:${m.toString('hex')}`);
      if (got.length === 2) resolve();
    }));
    ws.send('hello');
    ws.send(Buffer.from([0, 1, 255]));
    await two;
    expect(got).toEqual([`text:${Buffer.from('hello').toString('hex')}`, 'bin:0001ff']);
    const end = closed(ws);
    ws.send('close:4001');
    expect(await end).toEqual({ code: 4001, reason: 'bye' });
  });

  it('opens a WebSocket whose target has raw UTF-8 bytes on the same target, percent-encoded, not encoded twice', async () => {
    wsTargets.length = 0;
    const s: Socket = tcpConnect(gwPort, '127.0.0.1');
    const head = await new Promise<string>((resolve, reject) => {
      let buf = '';
      s.on('error', reject);
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        if (buf.includes('\r\n\r\n')) resolve(buf.slice(0, buf.indexOf('\r\n')));
      });
      s.write('GET /ws/caf\u00e9?q=\u20ac HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    });
    s.destroy();
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(wsTargets).toEqual(['/caf%C3%A9?q=%E2%82%AC']);
  });

  it('answers 502, not 500, when the upstream switches protocols on a plain request', async () => {
    const res = await request(`${gw}/raw/s101`);
    expect(res.statusCode).toBe(502);
    expectErrorBody(await res.body.text(), 'BAD_GATEWAY');
  });

  it('serves /health, /ready and /metrics on the admin listener, then drains and exits 0 on SIGTERM', async () => {
    // 503 while the service "down" has no instance in rotation (the earlier tests ejected it).
    const health = await request(`${admin}/health`);
    expect([200, 503]).toContain(health.statusCode);
    expect((JSON.parse(await health.body.text()) as { services: Record<string, { status: string }> }).services['echo']!.status).toBe('ok');
    const ready = await request(`${admin}/ready`);
    expect(ready.statusCode).toBe(200);
    await ready.body.text();
    const metrics = await request(`${admin}/metrics`);
    expect(metrics.statusCode).toBe(200);
    expect(await metrics.body.text()).toContain('rxgate_');

    const arrived = new Promise<void>((resolve) => { heldArrived = resolve; });
    const inFlight = request(`${gw}/p/hold`).then(async (r) => [r.statusCode, await r.body.text()]);
    await arrived;
    child.kill('SIGTERM');
    // The drain waits for the request in flight: release it once the gateway says it is draining.
    for (;;) {
      const r = await request(`${admin}/ready`).catch(() => null);
      if (r === null) break;
      await r.body.text();
      if (r.statusCode === 503) break;
    }
    for (const release of held.splice(0)) release();
    expect(await inFlight).toEqual([200, 'released']);
    expect(await exited).toBe(0);
  });
});
