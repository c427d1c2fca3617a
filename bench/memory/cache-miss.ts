/**
 * What a cache miss that stores costs in one process, with no network: the
 * route of `bench/configs/full.yaml` built the way the gateway builds it
 * (bench/route-harness.ts), its `forward` replaced by a synchronous fake
 * upstream answering the bench's head and ~1 KiB body, a new URL per request
 * (`/bench?r=<n>`, as the `full` target's wrk script), the body piped into a
 * sink as the edge's writer does. The store is filled first, so every store
 * also evicts, as under load. Cases leave stages out; `full − no cache` is
 * the cache's share of a miss.
 *
 * Reported per case: ns per request (the minimum over batches, cases
 * interleaved) and V8 heap bytes allocated per request (heapUsed grown over a
 * batch in which no GC ran; the median of those batches). Run with a large
 * young generation so most batches see no GC:
 *
 *   node --max-semi-space-size=64 --import ./bin/loader/register.mjs bench/memory/cache-miss.ts [--requests 20000] [--batches 20] [--rounds 3]
 *
 * `--only <prefix>` keeps the cases whose name starts with it; `--other <dir>`
 * adds the same cases built from another checkout's lib (a worktree of the
 * commit before a change), interleaved with this one's: an A/B in one process.
 * `--sites` then samples every allocation of the first case (V8's sampling
 * heap profiler, every 32 bytes, objects a collection freed kept) over
 * 20,000 more requests and prints bytes per request by allocating function.
 */
import { resolve } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Observable } from 'rxjs';
import { BufferedBody } from '../../lib/body.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import * as harness from '../route-harness.ts';

const { authorization, benchConfig, benchRequest } = harness;

const { values } = parseArgs({
  options: { requests: { type: 'string' }, batches: { type: 'string' }, rounds: { type: 'string' }, only: { type: 'string' }, other: { type: 'string' }, sites: { type: 'boolean' } },
});
const N = Number(values.requests ?? 20_000);
const BATCHES = Number(values.batches ?? 20);
const ROUNDS = Number(values.rounds ?? 3);
const config = benchConfig(new URL('../configs/full.yaml', import.meta.url), 'full.yaml');

// What bench/upstream.ts answers through undici (uWS adds date, content-length and its own header).
const PAYLOAD = Buffer.alloc(1068, 0x20);
const DATE = new Date().toUTCString();
const upstreamHeaders = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'date', DATE, 'uwebsockets', '20', 'content-length', '1068'];
const terminal: Handler = () => new Observable<GatewayResponse>((s) => {
  // a fresh chunk per response, as undici hands over its socket reads
  s.next({ status: 200, headers: upstreamHeaders.slice(), body: new BufferedBody([PAYLOAD.subarray(0)]) });
  s.complete();
});

const HEADERS = { host: '127.0.0.1:8080', authorization };
let serial = 0;
function request(): GatewayRequest {
  const req = benchRequest('/bench', HEADERS);
  req.query = `r=main-${serial++}`;
  return req;
}

const observer = new harness.DrainingObserver();

let gcs = 0;
new PerformanceObserver((l) => { gcs += l.getEntries().length; }).observe({ entryTypes: ['gc'] });
const turn = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

/** ns per request, and heap bytes per request (NaN when a GC ran in the batch). */
async function batch(handler: Handler): Promise<[number, number]> {
  const n = Math.floor(N / BATCHES);
  await turn();
  const g0 = gcs;
  const h0 = process.memoryUsage().heapUsed;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) handler(request()).subscribe(observer);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  const h1 = process.memoryUsage().heapUsed;
  await turn();
  if (observer.failed !== null) throw observer.failed;
  return [ns, gcs === g0 ? (h1 - h0) / n : NaN];
}

function casesOf(routeHandler: typeof harness.routeHandler, tag: string): Array<[string, Handler]> {
  const all: Array<[string, Handler]> = [
    ['full route (miss, stored)', routeHandler(config, () => true, terminal)],
    ['full route without cache', routeHandler(config, (s) => s !== 'cache', terminal)],
    ['cache alone (miss, stored)', routeHandler(config, (s) => s === 'cache', terminal)],
    ['no stages', routeHandler(config, () => false, terminal)],
  ];
  return all.filter(([name]) => values.only === undefined || name.startsWith(values.only)).map(([name, h]) => [`${name}${tag}`, h]);
}
const cases = casesOf(harness.routeHandler, values.other === undefined ? '' : ' (this tree)');
if (values.other !== undefined) {
  const other = (await import(pathToFileURL(resolve(values.other, 'bench/route-harness.ts')).href)) as typeof harness;
  const mine = cases.splice(0);
  const theirs = casesOf(other.routeHandler, ` (${values.other})`);
  for (let i = 0; i < mine.length; i++) cases.push(theirs[i]!, mine[i]!);
}
// Fill the 64 MiB store (~1.2 kB per entry) so that stores evict, and warm the token cache.
for (const [, h] of cases) for (let i = 0; i < 70_000; i++) h(request()).subscribe(observer);
for (const [, h] of cases) await batch(h);
const ns = new Map<string, number>(cases.map(([name]) => [name, Infinity]));
const heap = new Map<string, number[]>(cases.map(([name]) => [name, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (let b = 0; b < BATCHES; b++) {
    for (const [name, h] of cases) {
      const [t, a] = await batch(h);
      ns.set(name, Math.min(ns.get(name)!, t));
      if (!Number.isNaN(a)) heap.get(name)!.push(a);
    }
  }
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[s.length >> 1]!;
};
console.log(`ns per request, min of ${BATCHES * ROUNDS} batches of ${Math.floor(N / BATCHES)}; heap B/request, median of the batches without GC\n`);
console.log('| case | ns/request | heap B/request (batches) |\n|---|---:|---:|');
for (const [name] of cases) {
  console.log(`| ${name} | ${ns.get(name)!.toFixed(0)} | ${median(heap.get(name)!).toFixed(0)} (${heap.get(name)!.length}) |`);
}
if (observer.bytes === 0) throw new Error('no body bytes reached the sink');
if (values.sites === true) await sites(cases[0]!);
process.exit(0);

interface SampleNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: SampleNode[] }

/** Heap bytes per request by allocating function (sampled), for `handler`'s requests. */
async function sites([name, handler]: [string, Handler]): Promise<void> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  const n = 20_000;
  await session.post('HeapProfiler.startSampling', { samplingInterval: 32, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  for (let i = 0; i < n; i++) handler(request()).subscribe(observer);
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: SampleNode } };
  const bySite = new Map<string, number>();
  const walk = (node: SampleNode): void => {
    const f = node.callFrame;
    const site = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
    bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
    node.children.forEach(walk);
  };
  walk(profile.head);
  const total = [...bySite.values()].reduce((a, b) => a + b, 0);
  console.log(`\nallocation sites, ${name}: ${(total / n).toFixed(0)} B/request sampled`);
  for (const [site, bytes] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${(bytes / n).toFixed(0).padStart(6)}  ${site}`);
}
