/**
 * Load generators: wrk when installed (one thread, keep-alive, `--latency`),
 * else autocannon in-process. Both send the same requests: GET with the same
 * headers to `path` (fixed) or `path + counter` (a new URL per request, for
 * the cache miss path). Every target gets the same generator and settings.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ChildServer } from './child.ts';

export interface LoadOptions {
  /** `http://127.0.0.1:port` */
  origin: string;
  /** Request path; with `vary`, a counter is appended to it. */
  path: string;
  /** A new URL per request: `path` must end where the counter goes (`/x?r=run1-`). */
  vary: boolean;
  headers: Record<string, string>;
  connections: number;
  durationSec: number;
}

export interface LoadResult {
  requests: number;
  durationSec: number;
  /** Responses per second, all statuses. */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses with status >= 400 (wrk) or outside 2xx (autocannon). */
  non2xx: number;
  /** Connect/read/write errors and timeouts. */
  socketErrors: number;
}

export interface LoadGenerator {
  /** e.g. `wrk 4.1.0` or `autocannon 8.0.0` */
  readonly name: string;
  run(options: LoadOptions): Promise<LoadResult>;
}

// One Lua state per wrk thread; the harness runs wrk with -t1. `done` prints
// exact numbers as one JSON line; the text report is parsed as a fallback.
const WRK_SCRIPT = `
local path = os.getenv("BENCH_PATH") or "/"
local vary = os.getenv("BENCH_VARY") == "1"
local counter = 0
request = function()
  counter = counter + 1
  if vary then
    return wrk.format(nil, path .. counter)
  end
  return wrk.format(nil, path)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;

/** wrk's text units → milliseconds. */
function toMs(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      return Number.NaN;
  }
}

/** Parses wrk's output: the `done()` JSON line when present, else the text report. */
export function parseWrk(output: string): LoadResult {
  const json = /^BENCH_JSON (\{.*\})$/m.exec(output);
  if (json?.[1]) {
    const r = JSON.parse(json[1]) as Record<string, number>;
    const num = (key: string): number => r[key] ?? 0;
    const durationSec = num('duration_us') / 1e6;
    return {
      requests: num('requests'),
      durationSec,
      rps: durationSec > 0 ? num('requests') / durationSec : 0,
      p50Ms: num('p50_us') / 1000,
      p99Ms: num('p99_us') / 1000,
      non2xx: num('status'),
      socketErrors: num('connect') + num('read') + num('write') + num('timeout'),
    };
  }
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(output);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!total || !rps) throw new Error(`cannot parse wrk output:\n${output.slice(-1000)}`);
  const percentile = (p: string): number => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)`, 'm').exec(output);
    return m ? toMs(m[1] ?? '', m[2] ?? '') : Number.NaN;
  };
  const sockets = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  return {
    requests: Number(total[1]),
    durationSec: toMs(total[2] ?? '', total[3] ?? '') / 1000,
    rps: Number(rps[1]),
    p50Ms: percentile('50'),
    p99Ms: percentile('99'),
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sockets ? sockets.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

/** `wrk debian/4.1.0-3+b2 [epoll] …` → `wrk 4.1.0`; null when wrk is missing. */
export function wrkVersion(): string | null {
  let out: string;
  try {
    out = execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  } catch (error) {
    // wrk -v prints its version, then the usage, and exits 1.
    out = String((error as { stdout?: unknown }).stdout ?? '');
  }
  if (!out.startsWith('wrk')) return null;
  const version = /(\d+\.\d+\.\d+)/.exec(out);
  return version ? `wrk ${version[1]}` : 'wrk';
}

export function wrkGenerator(name: string, scratchDir: string): LoadGenerator {
  const script = join(scratchDir, 'bench.lua');
  writeFileSync(script, WRK_SCRIPT);
  return {
    name,
    async run(o) {
      const args = ['-t1', `-c${o.connections}`, `-d${o.durationSec}s`, '--latency', '--timeout', '10s', '-s', script];
      for (const [key, value] of Object.entries(o.headers)) args.push('-H', `${key}: ${value}`);
      args.push(`${o.origin}${o.path}`);
      const wrk = new ChildServer('wrk', 'wrk', args, { BENCH_PATH: o.path, BENCH_VARY: o.vary ? '1' : '0' }, undefined, 1 << 16);
      const limit = setTimeout(() => void wrk.stop(), (o.durationSec + 30) * 1000);
      await wrk.wait();
      clearTimeout(limit);
      return parseWrk(wrk.fullOutput());
    },
  };
}

interface AutocannonResult {
  requests: { total: number };
  latency: { p50: number; p99: number };
  duration: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}
interface AutocannonRequest {
  method?: string;
  path?: string;
  setupRequest?: (req: { path: string }) => { path: string };
}
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  headers: Record<string, string>;
  requests: AutocannonRequest[];
  timeout: number;
}) => Promise<AutocannonResult>;

export function autocannonGenerator(): LoadGenerator {
  const require = createRequire(import.meta.url);
  const autocannon = require('autocannon') as Autocannon;
  const version = (require('autocannon/package.json') as { version: string }).version;
  return {
    name: `autocannon ${version}`,
    async run(o) {
      let counter = 0;
      // The same request generator for every target, fixed path or not.
      const setupRequest = (req: { path: string }): { path: string } => {
        counter += 1;
        req.path = o.vary ? `${o.path}${counter}` : o.path;
        return req;
      };
      const r = await autocannon({
        url: o.origin,
        connections: o.connections,
        duration: o.durationSec,
        headers: o.headers,
        requests: [{ method: 'GET', path: o.path, setupRequest }],
        timeout: 10,
      });
      return {
        requests: r.requests.total,
        durationSec: r.duration,
        rps: r.duration > 0 ? r.requests.total / r.duration : 0,
        p50Ms: r.latency.p50,
        p99Ms: r.latency.p99,
        non2xx: r.non2xx,
        socketErrors: r.errors,
      };
    },
  };
}

/** wrk when installed (unless `prefer` says autocannon), else autocannon. */
export function pickGenerator(scratchDir: string, prefer?: 'wrk' | 'autocannon'): LoadGenerator {
  const wrk = prefer === 'autocannon' ? null : wrkVersion();
  if (wrk !== null) return wrkGenerator(wrk, scratchDir);
  if (prefer === 'wrk') throw new Error('wrk is not installed');
  return autocannonGenerator();
}
