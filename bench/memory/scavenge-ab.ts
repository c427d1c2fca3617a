/**
 * A V8 flag set at run time, A/B in one process: the route of
 * `bench/configs/full.yaml` (bench/route-harness.ts, a synchronous fake
 * upstream, a new URL per request, the 64 MiB store filled first: as
 * bench/memory/cache-miss.ts), batches of requests alternating between
 * `--A` and `--B` set with `v8.setFlagsFromString` before each batch, so both
 * arms run on the same heap, in the same process, under the same load from
 * the rest of the machine. Per arm: each GC pause (perf_hooks, wall time) by
 * kind, and process CPU (all threads, GC helpers included) per request.
 *
 *   node --import ./bin/loader/register.mjs bench/memory/scavenge-ab.ts [--a --parallel-scavenge] [--b --no-parallel-scavenge] [--batches 40] [--requests 4000]
 */
import { constants, PerformanceObserver, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { Observable } from 'rxjs';
import { BufferedBody } from '../../lib/body.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import * as harness from '../route-harness.ts';

const { values } = parseArgs({
  options: { a: { type: 'string' }, b: { type: 'string' }, batches: { type: 'string' }, requests: { type: 'string' } },
});
const ARMS = [values.a ?? '--parallel-scavenge', values.b ?? '--no-parallel-scavenge'];
const BATCHES = Number(values.batches ?? 40);
const N = Number(values.requests ?? 4000);
const config = harness.benchConfig(new URL('../configs/full.yaml', import.meta.url), 'full.yaml');

const PAYLOAD = Buffer.alloc(1068, 0x20);
const upstreamHeaders = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'date', new Date().toUTCString(), 'uwebsockets', '20', 'content-length', '1068'];
const terminal: Handler = () => new Observable<GatewayResponse>((s) => {
  s.next({ status: 200, headers: upstreamHeaders.slice(), body: new BufferedBody([PAYLOAD.subarray(0)]) });
  s.complete();
});
const HEADERS = { host: '127.0.0.1:8080', authorization: harness.authorization };
let serial = 0;
function request(): GatewayRequest {
  const req = harness.benchRequest('/bench', HEADERS);
  req.query = `r=ab-${serial++}`;
  return req;
}
const observer = new harness.DrainingObserver();
const handler = harness.routeHandler(config, () => true, terminal);

const gcs: Array<{ at: number; ms: number; kind: number }> = [];
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) gcs.push({ at: e.startTime, ms: e.duration, kind: (e as unknown as { detail: { kind: number } }).detail.kind });
}).observe({ entryTypes: ['gc'] });
const turn = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

interface Arm { scavenges: number[]; markCompacts: number[]; cpuNs: number[] }
const arms = new Map<string, Arm>(ARMS.map((f) => [f, { scavenges: [], markCompacts: [], cpuNs: [] }]));

for (let i = 0; i < 70_000; i++) handler(request()).subscribe(observer);
for (let b = 0; b < BATCHES * ARMS.length; b++) {
  const flag = ARMS[b % ARMS.length]!;
  setFlagsFromString(flag);
  await turn();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) handler(request()).subscribe(observer);
  const c1 = process.cpuUsage(c0);
  const t1 = performance.now();
  await turn();
  await turn();
  if (observer.failed !== null) throw observer.failed;
  const arm = arms.get(flag)!;
  arm.cpuNs.push(((c1.user + c1.system) * 1000) / N);
  for (const g of gcs.splice(0)) {
    if (g.at < t0 || g.at > t1) continue;
    if (g.kind === constants.NODE_PERFORMANCE_GC_MINOR) arm.scavenges.push(g.ms);
    else if (g.kind === constants.NODE_PERFORMANCE_GC_MAJOR) arm.markCompacts.push(g.ms);
  }
}
const q = (xs: number[], p: number): string => {
  if (xs.length === 0) return '-';
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.round(p * (s.length - 1)))]!.toFixed(2);
};
console.log(`${BATCHES} batches of ${N} requests per arm, interleaved; pauses in ms (perf_hooks), CPU of all threads\n`);
console.log('| arm | scavenges | median | p90 | p99 | max | over 5 ms | mark-compacts (longest) | CPU ns/request, median of batches |');
console.log('|---|---:|---:|---:|---:|---:|---:|---|---:|');
for (const [flag, a] of arms) {
  console.log(`| ${flag} | ${a.scavenges.length} | ${q(a.scavenges, 0.5)} | ${q(a.scavenges, 0.9)} | ${q(a.scavenges, 0.99)} | ${q(a.scavenges, 1)} | ${a.scavenges.filter((x) => x > 5).length} | ${a.markCompacts.length} (${q(a.markCompacts, 1)}) | ${q(a.cpuNs, 0.5)} |`);
}
process.exit(0);
