/**
 * Scenario `websocket`: (1) WebSocket messages per second through rxgate vs
 * straight to the upstream, same client, same message sizes (an echo
 * upstream; each connection keeps a window of messages in flight); (2) SSE
 * fan-out: N clients each hold an event stream through rxgate while the
 * upstream pushes an event to every stream at a fixed period; events/s
 * delivered and the gateway's RSS. The gateway runs in a child process (this
 * script with `--gateway FILE`); upstream and clients share this one.
 *
 *   npm run bench -- --scenario websocket [--duration 5] [--connections 16] [--sse-clients 1000]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, Agent, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket, { WebSocketServer } from 'ws';
import { argValue } from './args.ts';
import { rssBytes } from './cpu.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SIZES = [64, 4096, 65536];
const WINDOW = 32; // messages in flight per connection
const SSE_PERIOD_MS = 100;

async function gatewayMode(file: string): Promise<void> {
  const { parseConfig } = await import('../lib/config/load.ts');
  const { buildGateway } = await import('../lib/config/build.ts');
  const { silentLogger } = await import('../lib/observe/log.ts');
  const gw = buildGateway(parseConfig(readFileSync(file, 'utf8'), file, process.env), null, { logger: silentLogger, host: '127.0.0.1', port: 0 });
  const port = await gw.listen();
  process.stdout.write(`${port}\n`);
}

async function startGateway(yaml: string, dir: string): Promise<{ child: ChildProcess; port: number }> {
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  const child = spawn(process.execPath, ['--import', join(REPO_ROOT, 'bin', 'loader', 'register.mjs'), fileURLToPath(import.meta.url), '--gateway', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((ok, fail) => {
    child.stdout!.once('data', (d: Buffer) => ok(Number(d.toString().trim())));
    child.once('exit', (code) => fail(new Error(`gateway exited with ${code}`)));
  });
  return { child, port };
}

/** Echoed messages per second over `connections` sockets to `url`, `size`-byte binary messages. */
async function throughput(url: string, size: number, connections: number, durationMs: number): Promise<number> {
  const payload = Buffer.alloc(size, 7);
  const sockets = await Promise.all(Array.from({ length: connections }, () => new Promise<WebSocket>((ok, fail) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => ok(ws));
    ws.once('error', fail);
  })));
  let count = 0;
  let running = true;
  for (const ws of sockets) {
    ws.on('message', () => {
      count++;
      if (running) ws.send(payload);
    });
    for (let i = 0; i < WINDOW; i++) ws.send(payload);
  }
  await new Promise((r) => setTimeout(r, durationMs));
  running = false;
  const rate = count / (durationMs / 1000);
  for (const ws of sockets) ws.terminate();
  return rate;
}

/** Events per second delivered to `clients` event streams through `port`, and the gateway's peak RSS. */
async function fanOut(port: number, pid: number | undefined, streams: Set<ServerResponse>, clients: number, durationMs: number): Promise<{ rate: number; rssMiB: number; connected: number }> {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  let events = 0;
  let connected = 0;
  const requests = Array.from({ length: clients }, () => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/events/live', agent, headers: { accept: 'text/event-stream' } }, (res) => {
      connected++;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { events += chunk.split('\n\n').length - 1; });
    });
    req.on('error', () => {});
    req.end();
    return req;
  });
  // Wait until every stream reached the upstream (or 10 s).
  for (let i = 0; i < 100 && streams.size < clients; i++) await new Promise((r) => setTimeout(r, 100));
  events = 0;
  let peak = rssBytes(pid) ?? 0;
  const tick = setInterval(() => {
    for (const s of streams) s.write(`data: ${Date.now()}\n\n`);
    peak = Math.max(peak, rssBytes(pid) ?? 0);
  }, SSE_PERIOD_MS);
  await new Promise((r) => setTimeout(r, durationMs));
  clearInterval(tick);
  const rate = events / (durationMs / 1000);
  for (const r of requests) r.destroy();
  agent.destroy();
  return { rate, rssMiB: peak / 1024 / 1024, connected };
}

async function main(): Promise<void> {
  const durationMs = Number(argValue('duration') ?? '5') * 1000;
  const connections = Number(argValue('connections') ?? '16');
  const sseClients = Number(argValue('sse-clients') ?? '1000');
  const streams = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.flushHeaders();
    streams.add(res);
    res.on('close', () => streams.delete(res));
  });
  const wss = new WebSocketServer({ server, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const upstreamPort = (server.address() as AddressInfo).port;
  const dir = mkdtempSync(join(tmpdir(), 'rxgate-bench-ws-'));
  const { child, port } = await startGateway(`
services:
  # Each event stream holds an upstream connection: allow more than the 1,000 clients.
  up: { upstreams: ["http://127.0.0.1:${upstreamPort}"], connections: ${sseClients + 100} }
routes:
  - { path: /ws/*, service: up, websocket: { maxConnections: 100000 }, retry: false, circuitBreaker: false }
  - { path: /events/*, service: up, retry: false, circuitBreaker: false }
`, dir);
  try {
    const rows: string[] = [];
    for (const size of SIZES) {
      const direct = await throughput(`ws://127.0.0.1:${upstreamPort}/ws/echo`, size, connections, durationMs);
      const gateway = await throughput(`ws://127.0.0.1:${port}/ws/echo`, size, connections, durationMs);
      rows.push(`| ${size} B | ${Math.round(direct).toLocaleString('en')} | ${Math.round(gateway).toLocaleString('en')} | ${(gateway / direct * 100).toFixed(0)}% |`);
    }
    const idleRss = (rssBytes(child.pid) ?? 0) / 1024 / 1024;
    const sse = await fanOut(port, child.pid, streams, sseClients, durationMs);
    const expected = sse.connected * (1000 / SSE_PERIOD_MS);
    process.stdout.write([
      `## WebSocket echo: messages/s, ${connections} connections × ${WINDOW} in flight, ${durationMs / 1000} s each`,
      '',
      '| message | direct | through rxgate | ratio |',
      '|---|---|---|---|',
      ...rows,
      '',
      `## SSE fan-out: ${sseClients} clients (${sse.connected} connected), one event per stream every ${SSE_PERIOD_MS} ms, ${durationMs / 1000} s`,
      '',
      `events/s delivered: ${Math.round(sse.rate).toLocaleString('en')} (upstream offered ${Math.round(expected).toLocaleString('en')}); gateway RSS: ${idleRss.toFixed(0)} MiB before, ${sse.rssMiB.toFixed(0)} MiB peak`,
      '',
    ].join('\n'));
  } finally {
    child.kill('SIGTERM');
    for (const s of streams) s.destroy();
    wss.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const gatewayFile = argValue('gateway');
if (gatewayFile !== undefined) await gatewayMode(gatewayFile);
else await main().then(() => process.exit(0), (err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
