import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as tcpConnect, type AddressInfo, type Socket } from 'node:net';
import { createGunzip } from 'node:zlib';
import { request } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * The third black-box audit (notes/s7/A1-findings.md): rxgate started as
 * users start it (the CLI on a YAML file), probed as suites written for
 * nginx, Envoy, Traefik or Kong probe a gateway, on what the first two
 * audits (blackbox-proxy, blackbox-http) did not cover: the WebSocket relay
 * (refusals, subprotocols, the upstream's 101, headers, close codes,
 * extensions), Server-Sent Events, and the Prometheus exposition.
 *
 * One node:http upstream serves every case: its `ws` server accepts
 * upgrades (echo; `/headers` sends the handshake it got; `/close/N` closes
 * with N), `/refuse/N` answers an upgrade N with a body, `/sse*` streams
 * events and never ends.
 */

let runs: RxgateRuns;
let upstream: Server;
let wss: WebSocketServer;
let gw = '';
let admin = '';
/** How each upstream WebSocket ended, by path. */
const upstreamCloses = new Map<string, { code: number; reason: string }>();
/** Ends the `/ndjson` stream the upstream holds. */
let releaseStream = (): void => {};
/** Paths of the upgrade requests the upstream got, in order. */
const upgradePaths: string[] = [];
/** Paths of the plain HTTP requests the upstream got, in order. */
const httpPaths: string[] = [];
/** The event-stream requests the upstream got, and when their connection closed. */
const streams: Array<{ path: string; lastEventId: string | undefined; closed: boolean }> = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const u = new URL(req.url!, 'http://up');
    if (u.pathname.startsWith('/sse')) {
      const stream = { path: u.pathname, lastEventId: req.headers['last-event-id'] as string | undefined, closed: false };
      streams.push(stream);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'max-age=60' });
      res.write(`id: 1\ndata: ${'first '.repeat(300)}\n\n`);
      req.socket.on('close', () => { stream.closed = true; });
      return;
    }
    if (u.pathname === '/ndjson') {
      // One line, then the rest once the test has read it (a long poll, a progress stream).
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"progress":"started, the rest follows when the work is done"}\n');
      releaseStream = () => res.end('{"done":true}\n');
      return;
    }
    req.resume();
    httpPaths.push(u.pathname);
    // /hang holds its answer (a request in flight through a drain).
    if (u.pathname !== '/hang') res.end('plain');
  });
  // The last subprotocol offered, or none when the client offers `none`.
  wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: (set) => set.has('none') ? false : [...set].at(-1)! });
  // ws writes these as UTF-8: X-Name's value is the bytes of café in UTF-8.
  wss.on('headers', (headers) => headers.push('Set-Cookie: sid=abc; HttpOnly', 'X-Upstream: yes', 'X-Name: caf\u00e9'));
  upstream.on('upgrade', (req: IncomingMessage, socket, head) => {
    const u = new URL(req.url!, 'http://up');
    upgradePaths.push(u.pathname);
    if (u.pathname === '/refuse-big') {
      // A refusal the gateway cannot hold to pass on: a body over 1 MiB (the gateway hangs up after 1 MiB).
      socket.on('error', () => undefined);
      socket.end(`HTTP/1.1 403 No\r\nContent-Length: ${2 * 1024 * 1024}\r\nConnection: close\r\n\r\n${'x'.repeat(2 * 1024 * 1024)}`);
      return;
    }
    if (u.pathname === '/refuse-short') {
      // A refusal whose body is cut short: 10 bytes of the 100 announced.
      socket.end('HTTP/1.1 403 No\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789');
      return;
    }
    const refuse = /^\/refuse\/(\d+)$/.exec(u.pathname);
    if (refuse !== null) {
      const body = JSON.stringify({ why: 'upstream says no' });
      socket.end(`HTTP/1.1 ${refuse[1]} No\r\nContent-Type: application/json\r\nWWW-Authenticate: Bearer realm="up"\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('close', (code, reason) => upstreamCloses.set(u.pathname, { code, reason: reason.toString() }));
      const close = /^\/close\/(\d+)$/.exec(u.pathname);
      if (close !== null) {
        ws.close(Number(close[1]), `bye ${close[1]}`);
        return;
      }
      if (u.pathname === '/headers') ws.send(JSON.stringify({ url: req.url, headers: req.headers }));
      if (u.pathname === '/big') ws.send(Buffer.alloc(100_000));
      if (u.pathname === '/close-without-code') ws.close();
      ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  runs = rxgateRuns();
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
services:
  up: { upstreams: ["${up}"], timeout: 2s }
  down: { upstreams: ["http://127.0.0.1:1"], retry: false }
routes:
  - { path: /ws/*, service: up, websocket: true, rewrite: { stripPrefix: /ws } }
  - { path: /wsdown/*, service: down, websocket: true }
  - { path: /wssmall/*, service: up, websocket: { maxMessageSize: 65536 }, rewrite: { stripPrefix: /wssmall } }
  - { path: /wsdeny/*, service: up, websocket: true, ipFilter: { deny: ["127.0.0.0/8"] } }
  - { path: /wsshort/*, service: up, websocket: true, timeouts: { total: 200ms }, rewrite: { stripPrefix: /wsshort } }
  - { path: /sse/*, service: up, streamIdleTimeout: 5s, compression: { minSize: 16 }, cache: { ttl: 60s } }
  - { name: 'odd "name" \\ here', path: /odd/*, service: up }
  - { path: /stream/*, service: up, compression: true, rewrite: { stripPrefix: /stream } }
`)], { RXGATE_LOG_LEVEL: 'info' });
  const [listening, adminListening] = await Promise.all([proc.logged('rxgate listening'), proc.logged('rxgate admin listening')]);
  gw = `127.0.0.1:${listening['port'] as number}`;
  admin = `http://127.0.0.1:${adminListening['port'] as number}`;
});

afterAll(async () => {
  runs?.remove();
  for (const c of wss?.clients ?? []) c.terminate();
  await new Promise((r) => upstream?.close(r));
});

interface Refused { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** Opens a WebSocket through the gateway; resolves with the socket, or with the HTTP answer that refused it. */
function open(path: string, protocols: string[] = [], headers: Record<string, string> = {}, perMessageDeflate = false): Promise<WebSocket | Refused> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://${gw}${path}`, protocols, { headers, perMessageDeflate });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    ws.once('error', reject);
  });
}

async function opened(path: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = await open(path, protocols, headers);
  if (!(ws instanceof WebSocket)) throw new Error(`refused: ${JSON.stringify(ws)}`);
  return ws;
}

const closeOf = (ws: WebSocket): Promise<{ code: number; reason: string }> =>
  new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));

/** Sends an opening handshake of its own bytes and resolves with the head of the answer (the socket is then closed). */
function rawHandshake(path: string, extra: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = gw.split(':');
    const socket = tcpConnect(Number(port), host!);
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      const end = got.indexOf('\r\n\r\n');
      if (end >= 0) {
        socket.destroy();
        resolve(got.slice(0, end));
      }
    });
    socket.on('error', reject);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${gw}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
      + `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`);
  });
}

describe('the WebSocket relay', () => {
  it("answers an upgrade the upstream refuses with the upstream's own answer: status, headers and body", async () => {
    for (const status of [401, 403, 404]) {
      const answer = await open(`/ws/refuse/${status}`);
      expect(answer instanceof WebSocket, String(status)).toBe(false);
      const { headers, body } = answer as Refused;
      expect([(answer as Refused).status, headers['www-authenticate'], headers['content-type'], body]).toEqual([status, 'Bearer realm="up"', 'application/json', '{"why":"upstream says no"}']);
    }
  });

  it("does not let refused upgrades open the service's circuit breaker for everyone", async () => {
    // Before: each refusal was a retryable 502, retried and counted; after 3 clients' refusals every request got 503 CIRCUIT_OPEN for 30 s.
    for (let i = 0; i < 8; i++) expect(((await open('/ws/refuse/403')) as Refused).status).toBe(403);
    const plain = await request(`http://${gw}/ws/plain`);
    expect([plain.statusCode, await plain.body.text()]).toEqual([200, 'plain']);
    (await opened('/ws/echo')).terminate();
  });

  it('answers 502 to a refusal it cannot pass on (a body over 1 MiB, or cut short), once, and does not let it open the breaker', async () => {
    // Before: a retryable 502, retried and counted by the service's breaker, as refusals were before 34c04da.
    const before = upgradePaths.length;
    for (let i = 0; i < 8; i++) {
      const answer = (await open(i % 2 === 0 ? '/ws/refuse-big' : '/ws/refuse-short')) as Refused;
      expect([answer.status, (JSON.parse(answer.body) as { error: { code: string } }).error.code]).toEqual([502, 'BAD_GATEWAY']);
    }
    expect(upgradePaths.length - before).toBe(8);
    const plain = await request(`http://${gw}/ws/plain`);
    expect([plain.statusCode, await plain.body.text()]).toEqual([200, 'plain']);
  });

  it("refuses an upgrade the route's ipFilter denies with 403, the upstream never asked", async () => {
    const answer = (await open('/wsdeny/x')) as Refused;
    expect([answer.status, (JSON.parse(answer.body) as { error: { code: string } }).error.code]).toEqual([403, 'IP_FORBIDDEN']);
    expect(upgradePaths).not.toContain('/wsdeny/x');
  });

  it("bounds the handshake, not the WebSocket's life, by the route's timeouts.total", async () => {
    const ws = await opened('/wsshort/echo-long');
    await new Promise((r) => setTimeout(r, 500));
    ws.send('after the total timeout');
    expect(await new Promise<string>((r) => ws.once('message', (d) => r(d.toString())))).toBe('after the total timeout');
    ws.terminate();
  });

  it('answers 400 to an upgrade with a header value Node cannot send (a DEL), as a plain request gets', async () => {
    // Before: 500 INTERNAL_ERROR (http.request threw inside the handshake).
    expect(await rawHandshake('/ws/echo', 'X-A: a\x7fb\r\n')).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('answers 502 before any 101 when the upstream is down', async () => {
    const answer = (await open('/wsdown/x')) as Refused;
    expect([answer.status, (JSON.parse(answer.body) as { error: { code: string } }).error.code]).toEqual([502, 'BAD_GATEWAY']);
  });

  it('gives the client the subprotocol the upstream chose, and none when the upstream chose none', async () => {
    const ws = await opened('/ws/echo', ['v1.chat', 'v2.chat']);
    expect(ws.protocol).toBe('v2.chat');
    ws.terminate();
    // Before: the gateway's own client refused a 101 without a subprotocol ("Server sent no subprotocol"): 502, retryable, counted by the breaker.
    const head = await rawHandshake('/ws/echo', 'Sec-WebSocket-Protocol: none, other\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head).not.toMatch(/\r\nsec-websocket-protocol:/i);
  });

  it("passes the headers of the upstream's 101 (Set-Cookie) to the client, not its handshake fields", async () => {
    const head = await rawHandshake('/ws/echo', 'Sec-WebSocket-Protocol: a, b\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head).toMatch(/\r\nset-cookie: sid=abc; HttpOnly(\r\n|$)/i);
    expect(head).toMatch(/\r\nx-upstream: yes(\r\n|$)/i);
    // Before: re-encoded, the latin1 characters of its UTF-8 bytes written as UTF-8 (caf\xC3\x83\xC2\xA9).
    expect(head).toMatch(new RegExp(`\r\nx-name: ${Buffer.from('café', 'utf8').toString('latin1')}(\r\n|$)`, 'i'));
    expect(head.match(/\r\nsec-websocket-protocol: /gi)).toHaveLength(1);
    expect(head.match(/\r\nsec-websocket-accept: /gi)).toHaveLength(1);
    expect(head.match(/\r\nupgrade: /gi)).toHaveLength(1);
  });

  it('forwards the path, the query, Cookie, Authorization and Origin; not hop-by-hop headers', async () => {
    const ws = new WebSocket(`ws://${gw}/ws/headers?a=1&b=%20x`, { headers: { cookie: 'c=1', authorization: 'Bearer t', origin: 'https://o.example', 'keep-alive': 'timeout=5', te: 'trailers' } });
    // The upstream sends at once: listen before the open.
    const first = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d) => resolve(d.toString()));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with ${res.statusCode}`)));
      ws.once('error', reject);
    });
    const { url, headers } = JSON.parse(first) as { url: string; headers: Record<string, string> };
    ws.terminate();
    expect(url).toBe('/headers?a=1&b=%20x');
    expect([headers['cookie'], headers['authorization'], headers['origin'], headers['x-forwarded-for']]).toEqual(['c=1', 'Bearer t', 'https://o.example', '127.0.0.1']);
    expect([headers['keep-alive'], headers['te'], headers['sec-websocket-protocol']]).toEqual([undefined, undefined, undefined]);
  });

  it('passes close codes and reasons from the upstream: 1000, 1001, 3000, 4001, 4999', async () => {
    for (const code of [1000, 1001, 3000, 4001, 4999]) {
      const ws = await opened(`/ws/close/${code}`);
      expect(await closeOf(ws)).toEqual({ code, reason: `bye ${code}` });
    }
  });

  it('passes a close without a code from the upstream as one without (the client reads 1005, never 1000)', async () => {
    const ws = await opened('/ws/close-without-code');
    expect(await closeOf(ws)).toEqual({ code: 1005, reason: '' });
  });

  it('passes close codes and reasons from the client (1000, 4002), and a close without a code as one without', async () => {
    for (const code of [1000, 4002, undefined]) {
      const path = `/echo-${code ?? 'none'}`;
      const ws = await opened(`/ws${path}`);
      ws.close(code, code === undefined ? undefined : `client ${code}`);
      await closeOf(ws);
      await until(() => upstreamCloses.has(path), { timeout: 5000 });
      expect(upstreamCloses.get(path)).toEqual(code === undefined ? { code: 1005, reason: '' } : { code, reason: `client ${code}` });
    }
  });

  it('closes a client 3000-3999 code upstream as 1001: uWS 20.30 takes those codes as invalid (a limit, documented)', async () => {
    const ws = await opened('/ws/echo-3001');
    ws.close(3001, 'client 3001');
    await closeOf(ws);
    await until(() => upstreamCloses.has('/echo-3001'), { timeout: 5000 });
    expect(upstreamCloses.get('/echo-3001')).toEqual({ code: 1001, reason: 'client went away' });
  });

  it('closes the client with 1009 when the upstream sends a message over maxMessageSize, as docs say for either side', async () => {
    const ws = new WebSocket(`ws://${gw}/wssmall/big`);
    ws.on('error', () => undefined);
    // Before: 1011 "upstream went away" (ws drops the upstream without a close frame it could read).
    expect(await closeOf(ws)).toEqual({ code: 1009, reason: 'message too big' });
    await until(() => upstreamCloses.has('/big'), { timeout: 5000 });
    expect(upstreamCloses.get('/big')!.code).toBe(1009);
  });

  it('accepts a client that offers permessage-deflate without the extension, and relays its messages', async () => {
    const ws = await open('/ws/echo', [], {}, true) as WebSocket;
    expect(ws.extensions).toBe('');
    const text = 'hello '.repeat(2000);
    ws.send(text);
    expect(await new Promise<string>((r) => ws.once('message', (d) => r(d.toString())))).toBe(text);
    ws.terminate();
  });
});

describe('Server-Sent Events', () => {
  it('delivers the first event while the stream is open, uncompressed and not stored, with Last-Event-ID forwarded', async () => {
    for (const round of [1, 2]) {
      const res = await request(`http://${gw}/sse/a`, { headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip', 'last-event-id': `4${round}` } });
      expect([res.statusCode, res.headers['content-type'], res.headers['content-encoding'], res.headers['x-cache']]).toEqual([200, 'text/event-stream', undefined, 'BYPASS']);
      const first = await res.body[Symbol.asyncIterator]().next();
      expect(String(first.value)).toMatch(/^id: 1\ndata: first /);
      res.body.destroy();
    }
    const seen = streams.filter((s) => s.path === '/sse/a');
    expect(seen.map((s) => s.lastEventId)).toEqual(['41', '42']);
    // The client going away closes the upstream's stream.
    await until(() => seen.every((s) => s.closed), { timeout: 5000 });
  });
});

describe('streamed responses', () => {
  it('passes a compressed stream on when the upstream pauses, not when it ends', async () => {
    const res = await request(`http://${gw}/stream/ndjson`, { headers: { 'accept-encoding': 'gzip' } });
    expect(res.headers['content-encoding']).toBe('gzip');
    const gunzip = createGunzip();
    res.body.pipe(gunzip);
    let text = '';
    gunzip.on('data', (d: Buffer) => { text += d.toString(); });
    const ended = new Promise((r) => gunzip.on('end', r));
    // Before: zlib held the line until the body ended, and the upstream ends only after the client has it.
    await until(() => text.includes('"progress"'), { timeout: 5000 });
    releaseStream();
    await ended;
    expect(text).toBe('{"progress":"started, the rest follows when the work is done"}\n{"done":true}\n');
  });
});

describe('the Prometheus exposition', () => {
  it('stays valid text format after odd paths, upgrades and a route name with quotes and a backslash; unrouted paths share one label', async () => {
    for (const path of ['/nothing/%22%5C%0A', '/ws/%ff"x', '/a%5Cb?"=\\', '/%E2%82%AC', '/odd/x']) {
      await request(`http://${gw}${path}`).then((r) => r.body.dump(), () => undefined);
    }
    const res = await request(`${admin}/metrics`);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const text = await res.body.text();
    const typed = new Set<string>();
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)$/;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (type !== null) { typed.add(type[1]!); continue; }
      if (line.startsWith('# HELP ')) continue;
      const m = sample.exec(line);
      expect(m, line).not.toBeNull();
      expect(typed.has(m![1]!.replace(/_(bucket|sum|count)$/, '')) || typed.has(m![1]!), line).toBe(true);
    }
    const routes = new Set([...text.matchAll(/^rxgate_requests_total\{route="((?:[^"\\]|\\.)*)"/gm)].map((m) => m[1]));
    expect(routes.has('odd \\"name\\" \\\\ here'), [...routes].join(' ')).toBe(true);
    expect([...routes].every((r) => ['/ws/*', '/wsdown/*', '/wssmall/*', '/wsdeny/*', '/wsshort/*', '/sse/*', '/stream/*', 'odd \\"name\\" \\\\ here', 'none'].includes(r!)), [...routes].join(' ')).toBe(true);
  });
});

// Each case below starts a process of its own (its own port, paths and WebSockets on the shared upstream):
// they start and run side by side, with the time six processes starting at once take on a loaded machine.
const SIDE_BY_SIDE = { timeout: 120_000 };

describe.concurrent('drain and reload, with WebSockets open', SIDE_BY_SIDE, () => {
  const start = async (routes: string): Promise<{ proc: ReturnType<RxgateRuns['start']>; file: string; port: number; admin: string }> => {
    const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const yaml = (r: string): string => `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  up: { upstreams: ["${up}"] }
routes:
${r}`;
    const file = runs.file(yaml(routes));
    const proc = runs.start(['--config', file], { RXGATE_LOG_LEVEL: 'info' });
    const [listening, adminListening] = await Promise.all([proc.logged('rxgate listening'), proc.logged('rxgate admin listening')]);
    return { proc, file, port: listening['port'] as number, admin: `http://127.0.0.1:${adminListening['port'] as number}` };
  };

  /** The status an upgrade gets: 101 (closed at once) or the refusal's. */
  const upgradeStatus = (url: string, headers: Record<string, string> = {}): Promise<number> => new Promise((resolve) => {
    const next = new WebSocket(url, { headers });
    next.once('unexpected-response', (_req, res) => { res.resume(); resolve(res.statusCode!); });
    next.once('open', () => { next.terminate(); resolve(101); });
  });

  it('closes open WebSockets with 1001 Going Away on both sides when SIGTERM ends the drain, then exits 0', async () => {
    const { proc, port } = await start('  - { path: /ws/*, service: up, websocket: true, rewrite: { stripPrefix: /ws } }\n');
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/drain-1`);
    await new Promise((r) => ws.once('open', r));
    const closing = closeOf(ws);
    proc.proc.kill('SIGTERM');
    // Before: the socket was closed under it (1006, no close frame), and the upstream told "1001 client went away".
    expect(await closing).toEqual({ code: 1001, reason: 'going away' });
    expect(await proc.exited).toBe(0);
    await until(() => upstreamCloses.has('/drain-1'), { timeout: 5000 });
    expect(upstreamCloses.get('/drain-1')).toEqual({ code: 1001, reason: 'going away' });
  });

  /** A raw keep-alive connection: what it received since the last `clear()`, and when it closed. */
  const rawConnection = (port: number): { socket: Socket; got(): string; clear(): void; closed: Promise<void> } => {
    const socket = tcpConnect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => { got += d.toString(); });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((r) => socket.on('close', () => r()));
    return { socket, got: () => got, clear: () => { got = ''; }, closed };
  };

  it('answers requests on an open keep-alive connection during the drain with Connection: close, and closes it after the answer', async () => {
    const { proc, port } = await start('  - { path: /p/*, service: up, rewrite: { stripPrefix: /p } }\n');
    try {
      const keepAlive = rawConnection(port);
      keepAlive.socket.write('GET /p/before HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => keepAlive.got().endsWith('plain'));
      expect(keepAlive.got()).not.toMatch(/\r\nconnection: close\r\n/i);
      // A request in flight keeps the drain going.
      const held = rawConnection(port);
      held.socket.write('GET /p/hang HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => httpPaths.includes('/hang'));
      // An error answer on another open connection says so too.
      const other = rawConnection(port);
      other.socket.write('GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => other.got().includes('ROUTE_NOT_FOUND'));
      proc.proc.kill('SIGTERM');
      await proc.logged('rxgate draining: not ready, no new connections, requests in flight finish');
      keepAlive.clear();
      other.clear();
      keepAlive.socket.write('GET /p/during HTTP/1.1\r\nHost: x\r\n\r\n');
      other.socket.write('GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n');
      // nginx (ngx_http_header_filter: keepalive off while exiting) and Envoy's drain both say so and close.
      await keepAlive.closed;
      expect(keepAlive.got()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(keepAlive.got()).toMatch(/\r\nconnection: close\r\n/i);
      expect(keepAlive.got().endsWith('plain')).toBe(true);
      await other.closed;
      expect(other.got()).toMatch(/^HTTP\/1\.1 404 Not Found\r\n/);
      expect(other.got()).toMatch(/\r\nconnection: close\r\n/i);
      held.socket.destroy();
    } finally {
      proc.proc.kill('SIGKILL');
    }
  });

  it('keeps an open WebSocket relaying across a reload that removes its route; a new upgrade then gets 404', async () => {
    const { proc, file, port, admin } = await start('  - { path: /ws/*, service: up, websocket: true, rewrite: { stripPrefix: /ws } }\n  - { path: /p/*, service: up }\n');
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/reload-1`);
      await new Promise((r) => ws.once('open', r));
      writeFileSync(file, readFileSync(file, 'utf8').replace(/^ {2}- \{ path: \/ws\/\*.*\n/m, ''));
      const reload = await request(`${admin}/reload`, { method: 'POST' });
      expect([reload.statusCode, await reload.body.json()]).toEqual([200, { outcome: 'applied' }]);
      ws.send('still here');
      expect(await new Promise<string>((r) => ws.once('message', (d) => r(d.toString())))).toBe('still here');
      expect(await upgradeStatus(`ws://127.0.0.1:${port}/ws/reload-2`)).toBe(404);
      ws.terminate();
    } finally {
      proc.proc.kill('SIGKILL');
    }
  });

  it('counts maxConnections per route, not per route name: two routes on one path that differ by match have a count each', async () => {
    const { proc, port } = await start(['a', 'b'].map((t) => `  - { path: /ws/*, service: up, match: { headers: { x-tenant: ${t} } }, websocket: { maxConnections: 1 }, rewrite: { stripPrefix: /ws } }\n`).join(''));
    try {
      const first = new WebSocket(`ws://127.0.0.1:${port}/ws/tenant-a`, { headers: { 'x-tenant': 'a' } });
      await new Promise((r) => first.once('open', r));
      // Before: 503, tenant a's WebSocket counted against tenant b's route (both named /ws/*).
      expect(await upgradeStatus(`ws://127.0.0.1:${port}/ws/tenant-b`, { 'x-tenant': 'b' })).toBe(101);
      expect(await upgradeStatus(`ws://127.0.0.1:${port}/ws/tenant-a2`, { 'x-tenant': 'a' })).toBe(503);
      first.terminate();
    } finally {
      proc.proc.kill('SIGKILL');
    }
  });

  it("keeps counting a route's open WebSockets against its maxConnections across a reload", async () => {
    const { proc, port, admin } = await start('  - { path: /ws/*, service: up, websocket: { maxConnections: 1 }, rewrite: { stripPrefix: /ws } }\n');
    try {
      const first = new WebSocket(`ws://127.0.0.1:${port}/ws/cap-1`);
      await new Promise((r) => first.once('open', r));
      const reload = await request(`${admin}/reload`, { method: 'POST' });
      expect([reload.statusCode, await reload.body.json()]).toEqual([200, { outcome: 'applied' }]);
      expect(await upgradeStatus(`ws://127.0.0.1:${port}/ws/cap-2`)).toBe(503);
      first.terminate();
    } finally {
      proc.proc.kill('SIGKILL');
    }
  });
});

describe.concurrent('passive outlier ejection', SIDE_BY_SIDE, () => {
  it('ejects an instance that refuses upgrades with a status in ejectOnStatuses, as it does for plain requests', async () => {
    let badUpgrades = 0;
    const bad = createServer((_req, res) => res.writeHead(503).end('busy'));
    bad.on('upgrade', (_req, socket: Socket) => {
      badUpgrades++;
      socket.end('HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy');
    });
    await new Promise<void>((r) => bad.listen(0, '127.0.0.1', r));
    const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  up: { upstreams: ["http://127.0.0.1:${(bad.address() as AddressInfo).port}", "http://127.0.0.1:${(upstream.address() as AddressInfo).port}"], balancer: round-robin, ejectOnStatuses: [503], ejectAfter: 2, ejectFor: 30s, retry: false, circuitBreaker: false }
routes:
  - { path: /ws/*, service: up, websocket: true, rewrite: { stripPrefix: /ws } }
`)]);
    try {
      const port = (await proc.logged('rxgate listening'))['port'] as number;
      for (let i = 0; i < 20; i++) {
        const answer = await new Promise<WebSocket | Refused>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/eject-${i}`);
          ws.once('open', () => resolve(ws));
          ws.once('unexpected-response', (_req, res) => { res.resume(); resolve({ status: res.statusCode!, headers: res.headers, body: '' }); });
          ws.once('error', reject);
        });
        if (answer instanceof WebSocket) answer.terminate();
      }
      // Two strikes eject it for 30 s. Before: it kept its round-robin share, 10 of the 20.
      expect(badUpgrades).toBe(2);
    } finally {
      proc.proc.kill('SIGKILL');
      await new Promise((r) => bad.close(r));
    }
  });
});
