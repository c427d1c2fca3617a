import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawSend } from '../support/raw-http.ts';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';
import { connect } from '../support/ws.ts';

/**
 * Audit A17 (session 13, notes/s13/A17-findings.md): WebSocket and SSE
 * through rxgate started from YAML, probed as a user of nginx
 * (`proxy_http_version 1.1; Upgrade`), Envoy (`upgrade_configs`) or Traefik
 * would: the handshake (subprotocols, extensions, the pipeline's refusals,
 * an upstream's non-101 answers, one that never answers, malformed
 * upgrades), the session (fragments, limits, ping/pong, close codes, an
 * upstream that vanishes, the connection gauge) and event streams (one by
 * one through cache and compression, heartbeats, timeouts.total, a client
 * that leaves, the drain). What blackbox-ws.test.ts (audit 1) pins is not
 * repeated here.
 */

const SECRET = 'a17-secret-of-at-least-thirty-two-bytes!';
let runs: RxgateRuns;
let upstream: Server;
let wss: WebSocketServer;
let gw = '';
let admin = '';
let upUrl = '';
/** How each upstream WebSocket ended, and what it received, by the path of its upgrade. */
const upstreamCloses = new Map<string, { code: number; reason: string }>();
const upstreamGot = new Map<string, Array<{ data: Buffer; binary: boolean }>>();
const upstreamPongs = new Map<string, string[]>();
/** Upgrade requests the upstream holds unanswered. */
const silent = new Set<{ destroy(): void }>();
/** Upgrades the upstream saw, by path. */
const upgrades: string[] = [];
/** Event streams the upstream holds: the response to write more events to, and whether the client's side closed. */
const streams = new Map<string, { res: ServerResponse; lastEventId: string | undefined; closed: boolean }>();

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const u = new URL(req.url!, 'http://up');
    req.resume();
    if (u.pathname.startsWith('/sse/events/')) {
      const stream = { res, lastEventId: req.headers['last-event-id'] as string | undefined, closed: false };
      streams.set(u.pathname, stream);
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'max-age=60' });
      res.write('id: 1\ndata: one\n\n');
      res.on('close', () => { stream.closed = true; });
      if (u.pathname.startsWith('/sse/events/ticking')) {
        // An event every 100 ms for a second, then the end: longer than the route's timeouts.total.
        let n = 1;
        const timer = setInterval(() => {
          n++;
          if (n > 10) {
            clearInterval(timer);
            res.end();
          } else res.write(`id: ${n}\ndata: tick ${n}\n\n`);
        }, 100);
        res.on('close', () => clearInterval(timer));
      }
      return;
    }
    res.end(`plain ${req.method}`);
  });
  // The first subprotocol offered; under /unoffered one the client never offered.
  wss = new WebSocketServer({
    noServer: true, perMessageDeflate: false,
    handleProtocols: (set, req) => req.url!.startsWith('/unoffered') ? 'evil' : [...set][0]!,
  });
  upstream.on('upgrade', (req: IncomingMessage, socket, head) => {
    const u = new URL(req.url!, 'http://up');
    upgrades.push(u.pathname);
    socket.on('error', () => undefined);
    const answer = /^\/answer\/(\d+)$/.exec(u.pathname);
    if (answer !== null) {
      const body = `not a websocket: ${answer[1]}`;
      socket.end(`HTTP/1.1 ${answer[1]} Other\r\nLocation: /elsewhere\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      return;
    }
    if (u.pathname.startsWith('/silent')) {
      silent.add(socket); // never answers the upgrade
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const got: Array<{ data: Buffer; binary: boolean }> = [];
      upstreamGot.set(u.pathname, got);
      ws.on('close', (code, reason) => upstreamCloses.set(u.pathname, { code, reason: reason.toString() }));
      ws.on('pong', (data) => { upstreamPongs.set(u.pathname, [...upstreamPongs.get(u.pathname) ?? [], data.toString()]); });
      if (u.pathname.startsWith('/headers')) ws.send(JSON.stringify(req.headers));
      if (u.pathname.startsWith('/fragments')) {
        ws.send('one ', { fin: false });
        ws.send('two ', { fin: false });
        ws.send('three', { fin: true });
      }
      if (u.pathname.startsWith('/pinging')) ws.ping('heartbeat');
      const close = /^\/close\/(\d+)$/.exec(u.pathname);
      ws.on('message', (data, binary) => {
        got.push({ data: data as Buffer, binary });
        if (close !== null) ws.close(Number(close[1]), `bye ${close[1]}`);
        else if (u.pathname.startsWith('/vanish')) ws.terminate();
        else ws.send(data as Buffer, { binary });
      });
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  runs = rxgateRuns();
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
limits: { maxWebSocketMessage: 1048576 }
auth: { secret: "${SECRET}" }
services:
  up: { upstreams: ["${upUrl}"], timeout: 2s }
routes:
  - { path: /ws/*, service: up, websocket: true, rewrite: { stripPrefix: /ws } }
  - { path: /gauge/*, service: up, websocket: true, rewrite: { stripPrefix: /gauge } }
  - { path: /wsauth/*, service: up, websocket: true, auth: required, rewrite: { stripPrefix: /wsauth } }
  - { path: /wsrl/*, service: up, websocket: true, rateLimit: { limit: 1, window: 1m }, rewrite: { stripPrefix: /wsrl } }
  - { path: /wsslow/*, service: up, websocket: { connectTimeout: 300ms }, rewrite: { stripPrefix: /wsslow } }
  - { path: /wssmall/*, service: up, websocket: { maxMessageSize: 1000 }, rewrite: { stripPrefix: /wssmall } }
  - { path: /sse/*, service: up, compression: { minSize: 1 }, cache: { ttl: 60s }, timeouts: { total: 300ms } }
`)], { RXGATE_LOG_LEVEL: 'info' });
  const ports = await Promise.all(['rxgate listening', 'rxgate admin listening'].map(async (msg) => (await proc.logged(msg))['port'] as number));
  [gw, admin] = [`127.0.0.1:${ports[0]}`, `http://127.0.0.1:${ports[1]}`];
});

afterAll(async () => {
  wss?.clients.forEach((c) => c.terminate());
  silent.forEach((socket) => socket.destroy());
  runs?.remove();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

interface Refused { status: number; body: string }

/**
 * Opens a WebSocket through the gateway with ws's `options`; resolves once it is open. Frames read with the 101
 * are emitted on a tick before the caller's await resumes: held until the next turn, so the caller's listeners see them.
 */
function opened(path: string, protocols: string[] = [], options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(`ws://${gw}${path}`, protocols, { perMessageDeflate: false, ...options });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      ws.pause();
      resolve(ws);
      setImmediate(() => ws.resume());
    });
    ws.once('error', reject);
  });
}

/** The HTTP answer that refused an upgrade: its status and body. */
async function refused(path: string, headers: Record<string, string> = {}): Promise<Refused> {
  const answer = await connect(`ws://${gw}${path}`, [], headers).catch((err: Refused) => err);
  if (answer instanceof WebSocket) {
    answer.terminate();
    throw new Error(`${path} upgraded`);
  }
  return answer;
}

const codeOf = (r: Refused): string => (JSON.parse(r.body) as { error: { code: string } }).error.code;
const closeOf = (ws: WebSocket): Promise<{ code: number; reason: string }> =>
  new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
const nextMessage = (ws: WebSocket): Promise<{ text: string; binary: boolean }> =>
  new Promise((resolve) => ws.once('message', (d, binary) => resolve({ text: (d as Buffer).toString(), binary })));

/** Sends a request head of its own bytes (lines ending \n) and resolves with the head of the answer. */
async function rawHead(head: string): Promise<string> {
  const { responses } = await rawSend(Number(gw.split(':')[1]), [head.replaceAll('\n', '\r\n') + '\r\n']);
  return responses[0]?.head ?? '(no answer)';
}
/** An opening handshake's head (RFC 6455 4.1), `extra` lines added. */
const handshake = (path: string, extra = '', connection = 'Upgrade', version = '13'): string =>
  `GET ${path} HTTP/1.1\nHost: ${gw}\nUpgrade: websocket\nConnection: ${connection}\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\nSec-WebSocket-Version: ${version}\n${extra}`;

/** An HS256 token signed with the gateway's secret. */
function token(): string {
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 600 })}`;
  const sig = createHmac('sha256', SECRET).update(body).digest('base64url');
  return `${body}.${sig}`;
}

describe('the handshake', () => {
  it("fails the client when the upstream picks a subprotocol it never offered, rather than passing the 101 on", async () => {
    const answer = await refused('/ws/unoffered-1', { 'sec-websocket-protocol': 'chat' });
    expect([answer.status, codeOf(answer)]).toEqual([502, 'BAD_GATEWAY']);
  });

  it('sends no Sec-WebSocket-Extensions upstream when the client offers permessage-deflate, and answers the client without one', async () => {
    const head = await rawHead(handshake('/ws/headers-ext', 'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\n'));
    expect(head).toMatch(/^HTTP\/1\.1 101 /);
    expect(head).not.toMatch(/\r\nsec-websocket-extensions:/i);
    const ws = await opened('/ws/headers-ext2', [], { perMessageDeflate: true, headers: { origin: 'https://app.example', cookie: 'a=1' } });
    const seen = JSON.parse((await nextMessage(ws)).text) as Record<string, string>;
    ws.terminate();
    expect([seen['sec-websocket-extensions'], seen['sec-websocket-version'], seen['origin'], seen['cookie']]).toEqual([undefined, '13', 'https://app.example', 'a=1']);
  });

  it("refuses an upgrade without a token 401 and one over the route's rate limit 429, JSON, before any 101 and without the upstream", async () => {
    const before = upgrades.length;
    const noToken = await refused('/wsauth/echo');
    expect([noToken.status, codeOf(noToken)]).toEqual([401, 'UNAUTHORIZED']);
    const ws = await opened('/wsauth/echo-authorized', [], { headers: { authorization: `Bearer ${token()}` } });
    ws.terminate();
    (await opened('/wsrl/echo-first')).terminate();
    const limited = await refused('/wsrl/echo-second');
    expect([limited.status, codeOf(limited)]).toEqual([429, 'RATE_LIMITED']);
    expect(await rawHead(handshake('/wsrl/echo-third'))).toMatch(/^HTTP\/1\.1 429 [^]*\r\nretry-after: \d+/i);
    expect(upgrades.slice(before)).toEqual(['/echo-authorized', '/echo-first']);
  });

  it("gives the client an upstream's 200 or 302 answer to the upgrade as it is, not a 101 nor a hang", async () => {
    for (const status of [200, 302, 401, 404]) {
      const answer = await refused(`/ws/answer/${status}`);
      expect([answer.status, answer.body], String(status)).toEqual([status, `not a websocket: ${status}`]);
    }
    expect(await rawHead(handshake('/ws/answer/302'))).toMatch(/^HTTP\/1\.1 302 [^]*\r\nlocation: \/elsewhere/i);
  });

  it('answers 504 GATEWAY_TIMEOUT when the upstream never answers the upgrade within connectTimeout', async () => {
    const answer = await refused('/wsslow/silent-1');
    expect([answer.status, codeOf(answer)]).toEqual([504, 'GATEWAY_TIMEOUT']);
  });

  it('forwards a POST carrying Upgrade: websocket as a plain POST, as nginx and Envoy do', async () => {
    const head = await rawHead(handshake('/ws/x', 'Content-Length: 0\n').replace(/^GET/, 'POST'));
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('does not upgrade a GET whose Connection does not name upgrade (RFC 6455 4.1): it is a plain request', async () => {
    // Before: a 101, and the upstream asked to upgrade by the gateway's own well-formed handshake.
    const before = upgrades.length;
    const head = await rawHead(handshake('/ws/no-connection', '', 'keep-alive'));
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    expect(upgrades.length).toBe(before);
    // Firefox's Connection: keep-alive, Upgrade is an upgrade.
    expect(await rawHead(handshake('/ws/firefox', '', 'keep-alive, Upgrade'))).toMatch(/^HTTP\/1\.1 101 /);
  });

  it('answers an upgrade of Sec-WebSocket-Version 8 with 400 naming version 13 (RFC 6455 4.4), not a 101, the upstream not asked', async () => {
    // Before: a 101, while the gateway had offered the upstream version 13 in the client's place.
    const before = upgrades.length;
    const head = await rawHead(handshake('/ws/version-8', '', 'Upgrade', '8'));
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    expect(head).toMatch(/\r\nsec-websocket-version: 13\r?$/im);
    expect(upgrades.length).toBe(before);
  });
});

describe('the session', () => {
  it('relays text, binary and fragmented messages both ways, each whole and of its kind', async () => {
    const ws = await opened('/ws/fragments-1');
    expect(await nextMessage(ws)).toEqual({ text: 'one two three', binary: false });
    ws.send('a ', { fin: false });
    ws.send('b', { fin: true });
    expect(await nextMessage(ws)).toEqual({ text: 'a b', binary: false });
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await nextMessage(ws)).binary).toBe(true);
    ws.close(1000, 'done');
    await until(() => upstreamCloses.has('/fragments-1'));
    expect(upstreamGot.get('/fragments-1')!.map((m) => [m.data.toString('hex'), m.binary])).toEqual([['612062', false], ['010203', true]]);
  });

  it("relays a message at the limit; one byte over closes the sender (1009 over maxMessageSize; 1006 over limits.maxWebSocketMessage, uWS's bound, documented) and the upstream 1001, which never gets it", async () => {
    for (const [path, limit, code] of [['/wssmall/echo-limit', 1000, 1009], ['/ws/echo-cap', 1048576, 1006]] as const) {
      const ws = await opened(path);
      ws.send(Buffer.alloc(limit, 97));
      expect((await nextMessage(ws)).text.length).toBe(limit);
      const closing = closeOf(ws);
      ws.send(Buffer.alloc(limit + 1, 97));
      expect((await closing).code, path).toBe(code);
      const at = path.slice(path.lastIndexOf('/'));
      await until(() => upstreamCloses.has(at));
      expect([upstreamCloses.get(at)!.code, upstreamGot.get(at)!.length], path).toEqual([1001, 1]);
    }
  });

  it("answers the client's ping with a pong carrying its payload", async () => {
    const ws = await opened('/ws/echo-ping');
    const pong = new Promise<string>((r) => ws.once('pong', (d) => r(d.toString())));
    ws.ping('are you there');
    expect(await pong).toBe('are you there');
    ws.terminate();
  });

  it("passes the upstream's ping to the client and the client's pong back, so an upstream heartbeat sees a client that stopped answering", async () => {
    // nginx, Envoy and Traefik relay control frames; the ws README's broken-connection check relies on the client's own pong.
    const ws = await opened('/ws/pinging-1', [], { autoPong: false });
    const ping = await new Promise<string>((r) => ws.once('ping', (d) => r(d.toString())));
    expect(ping).toBe('heartbeat');
    ws.send('after the ping');
    await nextMessage(ws);
    expect(upstreamPongs.get('/pinging-1') ?? []).toEqual([]);
    ws.pong('heartbeat');
    await until(() => (upstreamPongs.get('/pinging-1') ?? []).length > 0);
    expect(upstreamPongs.get('/pinging-1')).toEqual(['heartbeat']);
    ws.terminate();
  });

  it('passes close codes and reasons both ways: 1000, 1001 and application codes 4000-4999', async () => {
    for (const code of [1000, 1001, 4000, 4999]) {
      const fromUpstream = await opened(`/ws/close/${code}`);
      const closing = closeOf(fromUpstream);
      fromUpstream.send('close please');
      expect(await closing, String(code)).toEqual({ code, reason: `bye ${code}` });
      (await opened(`/ws/echo-client-close-${code}`)).close(code, `client ${code}`);
      await until(() => upstreamCloses.has(`/echo-client-close-${code}`));
      expect(upstreamCloses.get(`/echo-client-close-${code}`), String(code)).toEqual({ code, reason: `client ${code}` });
    }
  });

  it('closes the client 1011 when the upstream vanishes without a close frame (1006 upstream)', async () => {
    const ws = await opened('/ws/vanish-1');
    const closing = closeOf(ws);
    ws.send('go');
    expect(await closing).toEqual({ code: 1011, reason: 'upstream went away' });
  });

  it('counts open WebSockets in rxgate_websocket_connections{route} and lets it fall back when they close', async () => {
    const gauge = async (): Promise<number> => {
      const text = await (await request(`${admin}/metrics`)).body.text();
      return Number(/^rxgate_websocket_connections\{route="\/gauge\/\*"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const sockets = await Promise.all(Array.from({ length: 20 }, (_, i) => opened(`/gauge/echo-g${i}`)));
    expect(await gauge()).toBe(20);
    await Promise.all(sockets.map((s) => { const c = closeOf(s); s.close(1000); return c; }));
    await until(async () => (await gauge()) === 0);
  });
});

/** Reads an event stream through the gateway: the text so far, decoded (the gateway must not compress it). */
async function readStream(path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; text(): string; done: Promise<void>; abort(): void }> {
  const ac = new AbortController();
  const res = await request(`http://${gw}${path}`, { headers: { accept: 'text/event-stream', 'accept-encoding': 'gzip, br', ...headers }, signal: ac.signal });
  let text = '';
  res.body.on('data', (c: Buffer) => { text += c.toString(); });
  const done = new Promise<void>((r) => { res.body.on('end', r); res.body.on('error', () => r()); });
  return { status: res.statusCode, headers: res.headers, text: () => text, done, abort: () => ac.abort() };
}

describe('Server-Sent Events', () => {
  it('delivers events one by one, heartbeat comments included, through a route with cache and compression: not compressed, not stored', async () => {
    const s = await readStream('/sse/events/one-by-one', { 'last-event-id': '41' });
    expect([s.status, s.headers['content-encoding'], s.headers['content-type']]).toEqual([200, undefined, 'text/event-stream']);
    await until(() => s.text().includes('data: one\n\n'));
    const up = streams.get('/sse/events/one-by-one')!;
    expect(up.lastEventId).toBe('41');
    up.res.write(': heartbeat\n\n');
    await until(() => s.text().includes(': heartbeat\n\n'));
    up.res.write('id: 2\ndata: two\n\n');
    await until(() => s.text().includes('data: two\n\n'));
    up.res.end();
    await s.done;
    // Not stored: a second request reaches the upstream again.
    const again = await readStream('/sse/events/one-by-one');
    await until(() => again.text().includes('data: one'));
    expect(streams.get('/sse/events/one-by-one')!.res).not.toBe(up.res);
    streams.get('/sse/events/one-by-one')!.res.end();
    await again.done;
  });

  it('delivers an event stream to a client that did not send Accept: text/event-stream (curl), uncompressed, and a second such client reaches the upstream too', async () => {
    const first = await readStream('/sse/events/no-accept', { accept: '*/*' });
    await until(() => first.text().includes('data: one'));
    expect(first.headers['content-encoding']).toBeUndefined();
    const up = streams.get('/sse/events/no-accept')!;
    const second = await readStream('/sse/events/no-accept', { accept: '*/*' });
    await until(() => second.text().includes('data: one'));
    expect(streams.get('/sse/events/no-accept')!.res).not.toBe(up.res);
    up.res.end();
    streams.get('/sse/events/no-accept')!.res.end();
    await Promise.all([first.done, second.done]);
  });

  it("aborts the upstream when the client leaves mid-stream", async () => {
    const s = await readStream('/sse/events/leaving');
    await until(() => s.text().includes('data: one'));
    s.abort();
    await until(() => streams.get('/sse/events/leaving')!.closed);
  });

  it("does not cut a healthy stream at the route's timeouts.total, which bounds the response head (as documented)", async () => {
    const s = await readStream('/sse/events/ticking');
    await s.done;
    expect(s.text()).toContain('data: tick 10\n\n');
  });
});

describe('the drain, with an event stream open', { timeout: 60_000 }, () => {
  it('keeps relaying an open event stream after SIGTERM until drain.timeout, then ends it, tells the upstream and exits 0', async () => {
    const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
drain: { timeout: 1s }
reload: { watch: false }
services:
  up: { upstreams: ["${upUrl}"] }
routes:
  - { path: /sse/*, service: up }
`)], { RXGATE_LOG_LEVEL: 'info' });
    const port = (await proc.logged('rxgate listening'))['port'] as number;
    const ac = new AbortController();
    const res = await request(`http://127.0.0.1:${port}/sse/events/draining`, { headers: { accept: 'text/event-stream' }, signal: ac.signal });
    let text = '';
    res.body.on('data', (c: Buffer) => { text += c.toString(); });
    const ended = new Promise<void>((r) => { res.body.on('end', r); res.body.on('error', () => r()); });
    await until(() => text.includes('data: one'));
    proc.proc.kill('SIGTERM');
    await proc.logged('rxgate draining: not ready, no new connections, requests in flight finish');
    streams.get('/sse/events/draining')!.res.write('data: during the drain\n\n');
    await until(() => text.includes('data: during the drain'));
    await ended;
    expect(await proc.exited).toBe(0);
    await until(() => streams.get('/sse/events/draining')!.closed);
  });
});
