// The cache's coalescing table under the full-miss pattern, in one process:
// 50 keys led at once, each settled 50 leads later (a new key per request),
// for the table in lib/stages/cache/inflight.ts and, when given a path, for
// another implementation of the same class (e.g. the Map-based one before it):
//   node --import ./bin/loader/register.mjs bench/memory/inflight-cost.ts [other.ts]
// Prints ns per has + lead + settle (min of 15 batches) and the scavenges and
// mark-compacts a run of 2M requests makes.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Inflight } from '../../lib/stages/cache/inflight.ts';

type Table = { has(k: string): boolean; lead(k: string): (v: null) => void };
const impls: Array<[string, new () => Table]> = [['inflight.ts', Inflight]];
if (process.argv[2]) impls.push([process.argv[2], (await import(pathToFileURL(resolve(process.argv[2])).href)).Inflight]);

let major = 0, minor = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) (e as unknown as { detail: { kind: number } }).detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR ? major++ : minor++;
}).observe({ entryTypes: ['gc'] });

let serial = 0;
const tables = new Map<unknown, Table>();
/** One table per implementation for the whole run, as the stage keeps one: it ends up in old space. */
function run(Impl: new () => Table, requests: number): number {
  if (!tables.has(Impl)) tables.set(Impl, new Impl());
  const t = tables.get(Impl)!;
  const settles: Array<(v: null) => void> = new Array(50);
  const base = `GET:http://127.0.0.1:8080/bench?r=main-${serial++}-`;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < requests; i++) {
    const key = base + i;
    if (!t.has(key)) {
      settles[i % 50]?.(null);
      settles[i % 50] = t.lead(key);
    }
  }
  return Number(process.hrtime.bigint() - t0) / requests;
}

for (const [name, Impl] of impls) {
  let best = Infinity;
  for (let b = 0; b < 15; b++) best = Math.min(best, run(Impl, 100_000));
  major = minor = 0;
  run(Impl, 2_000_000);
  await new Promise((r) => setTimeout(r, 50));
  console.log(`${name}: ${best.toFixed(0)} ns/request (min of 15 batches); 2M requests: ${minor} scavenges, ${major} mark-compacts`);
}
