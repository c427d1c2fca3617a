import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { request } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResponses, rawSend } from '../support/raw-http.ts';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { together } from '../support/together.ts';
import { until } from '../support/wait.ts';

/**
 * The tenth audit (notes/s10/A10-findings.md): clients that try to exhaust
 * the gateway, against rxgate started as users start it (the CLI on a YAML
 * file), over raw sockets: slowloris heads, dribbled and endless uploads, a
 * reader that never reads, idle and busy keep-alive connections, pipelining,
 * header and URL floods, requests in flight per client, WebSockets that
 * flood, stall, idle or send too much, and an event stream left mid-way.
 * Each case counts what happened (answers, closes, bytes, the gateway's RSS),
 * never how long it took; the waits on uWS's own ~10 s timers run side by
 * side (started together, test/support/together.ts: `it.concurrent` ran at
 * most five at a time).
 *
 * One node:http upstream records every request it gets and how it ended
 * (`complete`: the whole body arrived; `closed`: the gateway hung up).
 */

const MiB = 1024 * 1024;
let runs: RxgateRuns;
let upstream: Server;
let wss: WebSocketServer;
let port = 0;
let pid = 0;

interface Seen { path: string; bytes: number; complete: boolean; closed: boolean; written: number }
const seen: Seen[] = [];
const seenAt = (path: string): Seen[] => seen.filter((s) => s.path === path);
/** Per upstream WebSocket, by path: messages got, bytes sent, its close code. */
const sockets: Array<{ path: string; messages: number; sent: number; code: number | null }> = [];
/** Held requests (`/hold/*`), released by the test. */
const held: Array<() => void> = [];
/** The cases waiting on uWS's ~10 s timers, started together once the gateway listens. */
const slow = together();

/** The gateway's resident set, MiB (Linux /proc). */
const rss = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const path = new URL(req.url!, 'http://up').pathname;
    const s: Seen = { path, bytes: 0, complete: false, closed: false, written: 0 };
    seen.push(s);
    req.on('data', (d: Buffer) => { s.bytes += d.length; });
    req.on('end', () => { s.complete = true; });
    res.on('close', () => { s.closed = true; });
    if (path === '/big') {
      // 50 MiB, written as fast as the gateway takes it.
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x78);
      const pump = (): void => {
        while (s.written < 50 * MiB && !res.destroyed) {
          s.written += chunk.length;
          if (!res.write(chunk)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      pump();
      return;
    }
    if (path === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
      return;
    }
    if (path.startsWith('/hold/')) {
      req.resume();
      held.push(() => res.end('late'));
      return;
    }
    // Answers once the whole body is in (an upload).
    req.on('end', () => res.end(`got ${s.bytes}`));
  });
  wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * MiB });
  upstream.on('upgrade', (req: IncomingMessage, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => {
    const rec = { path: new URL(req.url!, 'http://up').pathname, messages: 0, sent: 0, code: null as number | null };
    sockets.push(rec);
    ws.on('message', () => { rec.messages++; });
    ws.on('close', (code) => { rec.code = code; });
    if (rec.path === '/flood/two-mib') ws.send(Buffer.alloc(2 * MiB, 2));
    if (rec.path === '/flood/out') {
      // 64 KiB messages as fast as ws buffers them (kept under 1 MiB queued here), up to 200 MiB.
      const chunk = Buffer.alloc(64 * 1024, 1);
      const pump = (): void => {
        while (ws.readyState === WebSocket.OPEN && rec.sent < 200 * MiB) {
          rec.sent += chunk.length;
          ws.send(chunk);
          if (ws.bufferedAmount > MiB) { setTimeout(pump, 5); return; }
        }
      };
      pump();
    }
  }));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  runs = rxgateRuns();
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
limits: { bodyIdleTimeout: 1s, maxRequestsPerClient: 8, maxWebSocketMessage: 1048576 }
# Each case's client is told apart by X-Forwarded-For where it matters (the 429 case).
trustedProxies: [127.0.0.1]
services:
  up: { upstreams: ["${up}"], timeout: 60s }
  dead: { upstreams: ["http://127.0.0.1:1"] }
routes:
  - { path: /small/*, service: up, maxBodySize: 1000 }
  - { path: /upload, service: up, maxBodySize: 104857600 }
  - { path: /big, service: up }
  - { path: /sse, service: up }
  - { path: /hold/*, service: up }
  - { path: /ok, service: up }
  - { path: /dead, service: dead }
  - path: /ws/*
    service: up
    websocket: { maxMessageSize: 65536, idleTimeout: 1s }
  - path: /flood/*
    service: up
    websocket: { idleTimeout: false, highWaterMark: 1048576, maxBuffered: 4194304, stallTimeout: 1s }
`)]);
  const listening = await proc.logged('rxgate listening');
  port = listening['port'] as number;
  pid = proc.proc.pid!;
  slow.start();
});

afterAll(async () => {
  await slow.settled();
  for (const release of held) release();
  for (const c of wss?.clients ?? []) c.terminate();
  runs?.remove();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

/** A raw connection that records what it got and whether it was closed. */
function open(onConnect?: (s: Socket) => void): { socket: Socket; got: () => string; closed: () => boolean } {
  const socket = connect(port, '127.0.0.1', () => onConnect?.(socket));
  socket.setNoDelay(true);
  let got = '';
  let closed = false;
  socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
  socket.on('error', () => undefined);
  socket.on('close', () => { closed = true; });
  return { socket, got: () => got, closed: () => closed };
}

const ok = async (headers: Record<string, string> = {}): Promise<number> => {
  const res = await request(`http://127.0.0.1:${port}/ok`, { headers, reset: true });
  await res.body.dump();
  return res.statusCode;
};

/** Writes `data` when the socket takes it, or gives up when it is closed. */
async function write(socket: Socket, data: string | Buffer): Promise<void> {
  if (socket.destroyed || socket.write(data)) return;
  await new Promise<void>((r) => {
    socket.once('drain', r);
    socket.once('close', r);
  });
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The most a client can have written to a gateway that stopped reading: what the kernels buffer on both ends (the
 * largest send and receive buffers autotuning may reach, tcp_wmem and tcp_rmem's max: 4 + 32 MiB on the CI VM), the
 * 1 MiB an error answer lingers for (request-body.ts LINGER_BYTES), and 2 MiB for uWS's reads and the client's own
 * buffer. Under load autotuning grows the buffers (review RD: 17,916,456 bytes went in against a fixed 16 MiB bound).
 */
const kernelMax = (f: string): number => Number(readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8').trim().split(/\s+/)[2]);
const unreadBound = kernelMax('tcp_wmem') + kernelMax('tcp_rmem') + 3 * MiB;
/** 64 MiB: the endless chunked uploads below offer this and their framing, the Content-Length one 95 MiB. */
const OFFERED = 4096 * 0x4000;

/** The gateway stopped reading: the client could not write all it offered, nor more than buffers and the linger hold. */
function notAllRead(written: number): void {
  expect(written).toBeLessThan(OFFERED);
  expect(written).toBeLessThan(unreadBound);
}

/**
 * POSTs a chunked body of up to 64 MiB to `path` on a raw connection, whatever the answer says (an endless body, as
 * far as the gateway knows; a write waits while the gateway reads nothing), until the gateway closes the connection.
 */
async function endlessChunked(path: string): Promise<{ answers: Array<[number, boolean]>; written: number }> {
  const c = open();
  c.socket.write(`POST ${path} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n`);
  const chunk = `4000\r\n${'y'.repeat(0x4000)}\r\n`;
  let written = 0;
  for (let i = 0; i < 4096 && !c.closed(); i++) {
    await write(c.socket, chunk);
    written += chunk.length;
  }
  await until(() => c.closed(), { timeout: 25_000 });
  return { answers: parseResponses(c.got()).map((r) => [r.status, /\r\nconnection: close/i.test(r.head)]), written };
}

describe('slow clients, each bounded by a timer of uWS or rxgate (side by side: uWS`s take ~10 s)', () => {
  it('slowloris: 100 heads dribbled a byte at a time are closed without an answer, while other clients are served', slow.add(async () => {
    const head = 'GET /ok HTTP/1.1\r\nHost: gw\r\nX-Slow: ' + 'a'.repeat(200);
    const conns = Array.from({ length: 100 }, () => open());
    let served = 0;
    for (let i = 0; i < head.length && conns.some((c) => !c.closed()); i++) {
      for (const c of conns) if (!c.closed()) c.socket.write(head[i]!);
      if (i % 5 === 0 && await ok() === 200) served++;
      await pause(200);
    }
    await until(() => conns.every((c) => c.closed()), { timeout: 25_000 });
    expect(conns.filter((c) => c.got() !== '')).toEqual([]);
    expect(served).toBeGreaterThan(0);
    expect(await ok()).toBe(200);
  }));

  it('a 1 MB upload sent a byte at a time is cut (faster than bodyIdleTimeout, slower than uWS takes), and the upstream request aborted', slow.add(async () => {
    const c = open();
    c.socket.write('POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000000\r\n\r\n');
    for (let i = 0; i < 100 && !c.closed(); i++) {
      c.socket.write('x');
      await pause(300);
    }
    expect(c.closed()).toBe(true);
    await until(() => seenAt('/upload').some((s) => s.closed));
    const [s] = seenAt('/upload');
    expect([s!.complete, s!.bytes < 1000]).toEqual([false, true]);
  }));

  it('a client that never reads a 50 MiB body: the upstream is held back, the gateway`s memory stays flat, and the connection is dropped', slow.add(async () => {
    const before = rss();
    const c = open((s) => {
      s.write('GET /big HTTP/1.1\r\nHost: gw\r\n\r\n');
      s.pause();
    });
    let peak = before;
    await until(() => {
      peak = Math.max(peak, rss());
      return seenAt('/big').some((s) => s.closed);
    }, { timeout: 25_000, interval: 50 });
    const [s] = seenAt('/big');
    // Backpressure reached the upstream: it wrote what the socket buffers took, far from 50 MiB.
    expect(s!.written).toBeLessThan(40 * MiB);
    expect(peak - before).toBeLessThan(64);
    c.socket.destroy();
  }));

  it('an idle keep-alive connection is closed by the gateway after its answer; 200 requests on one connection are all answered', slow.add(async () => {
    const c = open();
    let req = '';
    for (let i = 0; i < 200; i++) req += 'GET /nothing HTTP/1.1\r\nHost: gw\r\n\r\n';
    c.socket.write(req);
    await until(() => parseResponses(c.got()).length === 200);
    expect(new Set(parseResponses(c.got()).map((r) => r.status))).toEqual(new Set([404]));
    await until(() => c.closed(), { timeout: 25_000 });
  }));
  it('a chunked upload past maxBodySize is answered 413 mid-stream with Connection: close, the upstream request aborted, and no more of the body read', slow.add(async () => {
    const { answers, written } = await endlessChunked('/small/chunked');
    expect(answers).toEqual([[413, true]]);
    // The socket buffers on both sides, not the 64 MiB (before: all of it read and dropped, the connection kept).
    notAllRead(written);
    await until(() => seenAt('/small/chunked').every((s) => s.closed));
    expect(seenAt('/small/chunked').map((s) => s.complete)).not.toContain(true);
  }));

  it('an endless chunked upload answered 404 (no route) or 502 (the upstream refuses) is no more read either, and told Connection: close', slow.add(async () => {
    const [none, dead] = await Promise.all([endlessChunked('/no-route-here'), endlessChunked('/dead')]);
    expect([none.answers, dead.answers]).toEqual([[[404, true]], [[502, true]]]);
    notAllRead(none.written);
    notAllRead(dead.written);
  }));

  it('a Content-Length over maxBodySize is 413 with Connection: close before any byte is forwarded, and the body is not read', slow.add(async () => {
    const c = open();
    c.socket.write('POST /small/length HTTP/1.1\r\nHost: gw\r\nContent-Length: 100000000\r\n\r\n');
    let written = 0;
    for (let i = 0; i < 6104 && !c.closed(); i++) {
      await write(c.socket, Buffer.alloc(0x4000, 0x79));
      written += 0x4000;
    }
    await until(() => c.closed(), { timeout: 25_000 });
    expect(parseResponses(c.got()).map((r) => [r.status, /\r\nconnection: close/i.test(r.head)])).toEqual([[413, true]]);
    notAllRead(written);
    expect(seenAt('/small/length')).toEqual([]);
  }));
});

describe('floods and limits answered at once', () => {
  it('10,000 tiny headers and a 100 KB target: 431 or 414 when uWS hands them over whole, else closed unanswered; a 64 KB header is 431, a 9 KB target 414; nothing forwarded, and the gateway serves on', async () => {
    const lines = Array.from({ length: 10_000 }, (_, i) => `h${i}: v\r\n`).join('');
    // uWS 20.30 hands over a head of some tens of KB that came in one read, and closes on one too big for its buffer or in pieces.
    const many = await rawSend(port, [`GET /many HTTP/1.1\r\nHost: gw\r\n${lines}\r\n`], { awaitClose: true, holdMs: 2000 });
    expect(many.held).toBe(false);
    expect(many.responses.length === 0 ? many.closed : many.responses.map((r) => r.status)).toEqual(many.responses.length === 0 ? true : [431]);
    const longUrl = await rawSend(port, [`GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: gw\r\n\r\n`], { awaitClose: true, holdMs: 2000 });
    expect(longUrl.held).toBe(false);
    expect(longUrl.responses.length === 0 ? longUrl.closed : longUrl.responses.map((r) => r.status)).toEqual(longUrl.responses.length === 0 ? true : [414]);
    // A 64 KB head is handed over when it came in one read (431), and closed unanswered when it came in more than one
    // (uWS 20.30's fixed 4 KiB head buffer; docs/limits.md): under load one write of it can arrive in pieces (review RD).
    const big = await rawSend(port, [`GET /ok HTTP/1.1\r\nHost: gw\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`], { holdMs: 2000 });
    expect(big.held).toBe(false);
    expect(big.responses.length === 0 ? big.closed : big.responses.map((r) => r.status)).toEqual(big.responses.length === 0 ? true : [431]);
    const url = await rawSend(port, [`GET /${'a'.repeat(9000)} HTTP/1.1\r\nHost: gw\r\n\r\n`]);
    expect(url.responses.map((r) => r.status)).toEqual([414]);
    expect(seen.filter((s) => s.path.startsWith('/aaaa') || s.path === '/many')).toEqual([]);
    expect(await ok()).toBe(200);
  });

  it('100 pipelined requests answered at once come back in order; behind a proxied one the connection is closed and at most one is forwarded', async () => {
    let req = '';
    for (let i = 0; i < 100; i++) req += `GET /none-${i} HTTP/1.1\r\nHost: gw\r\n\r\n`;
    const answered = await rawSend(port, [req], { expected: 100 });
    expect(answered.responses.map((r) => /\/none-(\d+)/.exec(r.body)?.[1])).toEqual(Array.from({ length: 100 }, (_, i) => String(i)));
    const before = seenAt('/ok').length;
    const proxied = await rawSend(port, [req.replaceAll(/\/none-\d+/g, '/ok')], { expected: 100, holdMs: 2000 });
    expect(proxied.closed).toBe(true);
    expect(seenAt('/ok').length - before).toBeLessThanOrEqual(1);
    expect(await ok()).toBe(200);
  });

  it('a client over maxRequestsPerClient gets 429 while another client is served, and is served again once its requests end', async () => {
    const a = { 'x-forwarded-for': '198.51.100.7' };
    const holding = Array.from({ length: 8 }, (_, i) => request(`http://127.0.0.1:${port}/hold/${i}`, { headers: a, reset: true }));
    await until(() => seen.filter((s) => s.path.startsWith('/hold/')).length === 8);
    const over = await request(`http://127.0.0.1:${port}/ok`, { headers: a, reset: true });
    expect([over.statusCode, ((await over.body.json()) as { error: { code: string } }).error.code]).toEqual([429, 'TOO_MANY_IN_FLIGHT']);
    expect(await ok({ 'x-forwarded-for': '198.51.100.8' })).toBe(200);
    for (const release of held.splice(0)) release();
    for (const res of await Promise.all(holding)) await res.body.dump();
    expect(await ok(a)).toBe(200);
  });

  it('an event stream the client leaves mid-way is aborted upstream', async () => {
    const c = open();
    c.socket.write('GET /sse HTTP/1.1\r\nHost: gw\r\nAccept: text/event-stream\r\n\r\n');
    await until(() => c.got().includes('data: first'));
    c.socket.destroy();
    await until(() => seenAt('/sse').every((s) => s.closed));
    expect(seenAt('/sse')).toHaveLength(1);
  });
});

describe('WebSockets', () => {
  const ws = (path: string): Promise<WebSocket> => new Promise((resolve, reject) => {
    const w = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    w.on('open', () => resolve(w));
    w.on('error', reject);
  });
  const closed = (w: WebSocket): Promise<number> => new Promise((r) => w.on('close', (code) => r(code)));
  const upstreamOf = (path: string): (typeof sockets)[number] | undefined => sockets.find((s) => s.path === path);

  it('a message over maxMessageSize closes the client 1009 and the upstream 1001, which never gets it', async () => {
    const w = await ws('/ws/big');
    const code = closed(w);
    w.send(Buffer.alloc(70_000));
    expect(await code).toBe(1009);
    await until(() => upstreamOf('/ws/big')?.code != null);
    expect(upstreamOf('/ws/big')).toMatchObject({ messages: 0, code: 1001 });
  });

  it('a connection silent both ways is closed 1001 on both sides after idleTimeout', async () => {
    const w = await ws('/ws/idle');
    expect(await closed(w)).toBe(1001);
    await until(() => upstreamOf('/ws/idle')?.code != null);
    expect(upstreamOf('/ws/idle')?.code).toBe(1001);
  });

  it('100,000 one-byte frames in a burst all reach the upstream, and the gateway serves on', async () => {
    const c = open();
    c.socket.write('GET /ws/tiny HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await until(() => c.got().includes('\r\n\r\n'));
    expect(c.got()).toMatch(/^HTTP\/1\.1 101 /);
    // A masked binary frame of one byte.
    const batch = Buffer.concat(Array.from({ length: 10_000 }, () => Buffer.from([0x82, 0x81, 1, 2, 3, 4, 0x79])));
    for (let i = 0; i < 10; i++) await write(c.socket, batch);
    await until(() => upstreamOf('/ws/tiny')?.messages === 100_000, { timeout: 20_000 });
    expect(await ok()).toBe(200);
    c.socket.destroy();
  });

  it('limits.maxWebSocketMessage bounds what uWS reassembles: four clients each announcing a 60 MiB frame are closed after a few MiB, memory flat, the upstream never gets a message', async () => {
    const before = rss();
    const frame = Buffer.alloc(14);
    frame[0] = 0x82;
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(60 * MiB), 2);
    const sent = await Promise.all([0, 1, 2, 3].map(async (i) => {
      const c = open();
      c.socket.write(`GET /ws/huge${i} HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      await until(() => c.got().includes('\r\n\r\n'));
      await write(c.socket, frame);
      let written = 0;
      for (let k = 0; k < 60 && !c.closed(); k++) {
        await write(c.socket, Buffer.alloc(MiB, 7));
        written += MiB;
      }
      await until(() => c.closed());
      return written;
    }));
    // Before the key (uWS's 64 MiB for every route): all 60 MiB of each taken, RSS +176 MiB for the four (audit A10).
    for (const written of sent) expect(written).toBeLessThan(16 * MiB);
    expect(rss() - before).toBeLessThan(64);
    await until(() => [0, 1, 2, 3].every((i) => upstreamOf(`/ws/huge${i}`)?.code != null));
    expect([0, 1, 2, 3].map((i) => upstreamOf(`/ws/huge${i}`)!.messages)).toEqual([0, 0, 0, 0]);
  });

  it('limits.maxWebSocketMessage outside 1024 … 64 MiB is refused (exit 2, the key path in the message)', async () => {
    const bad = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
limits: { maxWebSocketMessage: 100 }
services:
  up: { upstreams: ["http://127.0.0.1:1"] }
routes:
  - { path: /x, service: up }
`)]);
    expect(await bad.exited).toBe(2);
  });

  it('a route`s maxMessageSize is at most limits.maxWebSocketMessage: the default 16 MiB is read as the key`s 1 MiB (an upstream message of 2 MiB closes the client 1009), and a route setting more is refused (exit 2, the key path)', async () => {
    const w = await ws('/flood/two-mib');
    let got = 0;
    w.on('message', () => { got++; });
    // Before: relayed whole to the client, whose own 2 MiB message uWS would refuse (1006).
    expect(await closed(w)).toBe(1009);
    expect(got).toBe(0);
    const bad = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
limits: { maxWebSocketMessage: 1048576 }
services:
  up: { upstreams: ["http://127.0.0.1:1"] }
routes:
  - { path: /x, service: up, websocket: { maxMessageSize: 2097152 } }
`)]);
    expect(await bad.exited).toBe(2);
    // What it wrote to stderr, as the rejection of a wait for a line it never logs carries it.
    expect(await bad.logged('rxgate listening').catch((err: Error) => err.message)).toMatch(/websocket\.maxMessageSize \(2097152\) is over limits\.maxWebSocketMessage \(1048576\)/);
  });

  it('a client that never reads while the upstream floods: the upstream is held back, then closed 1013 as the client is a slow consumer; memory stays flat', async () => {
    const before = rss();
    let peak = before;
    const c = open((s) => {
      s.write('GET /flood/out HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      s.once('data', () => s.pause());
    });
    await until(() => {
      peak = Math.max(peak, rss());
      return upstreamOf('/flood/out')?.code != null;
    }, { timeout: 20_000, interval: 50 });
    expect(upstreamOf('/flood/out')?.code).toBe(1013);
    expect(upstreamOf('/flood/out')!.sent).toBeLessThan(100 * MiB);
    expect(peak - before).toBeLessThan(64);
    c.socket.destroy();
  });
});
