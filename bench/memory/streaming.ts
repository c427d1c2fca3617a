/**
 * Streaming memory benchmark: 1 GiB up and 1 GiB down through the gateway,
 * sampling the gateway process's resident memory (VmRSS from /proc) the
 * whole time. Reports the peak growth over the idle baseline.
 *
 *   node --import ./bin/loader/register.mjs bench/memory/streaming.ts [--size-mib 1024] [--json]
 *
 * Everything runs on 127.0.0.1; the gateway runs in its own process (the
 * real CLI); every process started here is stopped by PID at the end.
 */
import { spawn } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';

const { values } = parseArgs({ options: { 'size-mib': { type: 'string' }, json: { type: 'boolean' } } });
const SIZE = Number(values['size-mib'] ?? 1024) * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 'rxgate-');
/**
 * uWebSockets.js refuses a request Content-Length above 999,999,999 bytes
 * (its parser's overflow guard), so a 1 GiB upload goes chunked.
 */
const MAX_UWS_CONTENT_LENGTH = 999_999_999;

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

function startUpstream(): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/small') {
      res.end('ok');
      return;
    }
    if (req.url === '/download') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(SIZE) });
      let sent = 0;
      const pump = (): void => {
        while (sent < SIZE) {
          const n = Math.min(CHUNK.length, SIZE - sent);
          sent += n;
          const ok = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
          if (!ok) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
      return;
    }
    let received = 0;
    const hash = createHash('sha1');
    req.on('data', (c: Buffer) => {
      received += c.length;
      hash.update(c);
    });
    req.on('end', () => res.end(JSON.stringify({ received, sha1: hash.digest('hex') })));
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

function upload(port: number, chunked = SIZE > MAX_UWS_CONTENT_LENGTH): Promise<{ received: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: chunked ? {} : { 'content-length': String(SIZE) } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(JSON.parse(body)));
    });
    req.on('error', reject);
    let sent = 0;
    const pump = (): void => {
      while (sent < SIZE) {
        const n = Math.min(CHUNK.length, SIZE - sent);
        sent += n;
        if (!req.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          req.once('drain', pump);
          return;
        }
      }
      req.end();
    };
    pump();
  });
}

function download(port: number, path = '/download'): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    }).on('error', reject).end();
  });
}

async function main(): Promise<void> {
  const upstream = await startUpstream();
  const upstreamPort = (upstream.address() as AddressInfo).port;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'rxgate-mem-'));
  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, `listen: { host: 127.0.0.1, port: ${port} }
log: { level: warn }
services:
  blob: { upstreams: ["http://127.0.0.1:${upstreamPort}"], timeout: 60s }
routes:
  - { path: /*, service: blob }
`);
  // RXGATE_LOG_LEVEL would override the config's log.level.
  const { RXGATE_LOG_LEVEL: _level, ...env } = process.env;
  const gateway = spawn(process.execPath, ['bin/rxgate.mjs', '--config', config], { stdio: ['ignore', 'inherit', 'inherit'], env });
  const pid = gateway.pid!;
  let peak = 0;
  try {
    // Wait for the port, then warm up so the baseline includes JIT and pools.
    for (let i = 0; i < 100; i++) {
      try {
        await download(port, '/small');
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
      if (i === 99) throw new Error('gateway did not start');
    }
    for (let i = 0; i < 200; i++) await download(port, '/small');
    const baseline = rssOf(pid);
    const sampler = setInterval(() => {
      peak = Math.max(peak, rssOf(pid));
    }, 20);
    const t0 = performance.now();
    const up = await upload(port);
    const t1 = performance.now();
    const down = await download(port);
    const t2 = performance.now();
    clearInterval(sampler);
    peak = Math.max(peak, rssOf(pid));
    if (up.received !== SIZE || down !== SIZE) throw new Error(`byte counts differ: up ${up.received}, down ${down}, expected ${SIZE}`);
    const mib = (n: number): string => (n / 1048576).toFixed(1);
    const result = {
      sizeMiB: SIZE / 1048576,
      baselineRssMiB: Number(mib(baseline)),
      peakRssMiB: Number(mib(peak)),
      growthMiB: Number(mib(peak - baseline)),
      uploadMiBps: Number(((SIZE / 1048576) / ((t1 - t0) / 1000)).toFixed(0)),
      downloadMiBps: Number(((SIZE / 1048576) / ((t2 - t1) / 1000)).toFixed(0)),
    };
    if (values.json === true) console.log(JSON.stringify(result));
    else {
      console.log(`streamed ${result.sizeMiB} MiB up (${result.uploadMiBps} MiB/s) and ${result.sizeMiB} MiB down (${result.downloadMiBps} MiB/s) through rxgate`);
      console.log(`gateway RSS: baseline ${result.baselineRssMiB} MiB, peak ${result.peakRssMiB} MiB, growth ${result.growthMiB} MiB (target < 64 MiB)`);
    }
    process.exitCode = result.growthMiB < 64 ? 0 : 1;
  } finally {
    gateway.kill('SIGTERM');
    upstream.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
