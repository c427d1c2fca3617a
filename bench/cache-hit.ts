/**
 * What a cache hit costs in one process, with no network: the route of
 * `bench/configs/full.yaml` built the way the gateway builds it (config
 * loader, stage registry, route builder, events wired to metrics), its
 * terminal `forward` replaced by a synchronous fake upstream answering the
 * bench's head and ~1 KiB body. The URL never changes, so after the first
 * request every request is a memory hit; the response body is piped into a
 * sink, as the edge's writer does. Cases leave stages out of the pipeline;
 * the difference to the full route is that stage's share of a hit. See
 * docs/cache-hit.md for what the figures say and the end-to-end ones.
 *
 * Requests are started as the edge starts them (`RouteTable.start`): through
 * the handler's `start` with a plain observer when it has one; the V8 flags
 * the gateway's CLI sets are set here too (`setGatewayV8Flags`).
 *
 * Reported: ns per request, the minimum over the batches (the
 * least-disturbed batch on a shared machine), cases interleaved; the
 * process's CPU time by default (`--clock wall` for elapsed time).
 * `--alloc`: bytes allocated per request instead (median of 7 readings of
 * `--requests` requests each; run node with --expose-gc and a young
 * generation big enough for them, as below).
 *
 *   node --import ./bin/loader/register.mjs bench/cache-hit.ts [--requests 20000] [--batches 10] [--rounds 3] [--clock cpu|wall]
 *   node --expose-gc --min-semi-space-size=64 --max-semi-space-size=64 --import ./bin/loader/register.mjs bench/cache-hit.ts --alloc
 */
import { parseArgs } from 'node:util';
import { Observable } from 'rxjs';
import { BufferedBody } from '../lib/body.ts';
import { setGatewayV8Flags } from '../lib/runtime.ts';
import type { Startable } from '../lib/subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../lib/types.ts';
import { authorization, benchConfig, benchRequest, DrainingObserver, routeHandler } from './route-harness.ts';

const { values } = parseArgs({
  options: { requests: { type: 'string' }, batches: { type: 'string' }, rounds: { type: 'string' }, clock: { type: 'string' }, alloc: { type: 'boolean' } },
});
// The V8 flags the gateway's CLI sets at start (unless given to node here).
setGatewayV8Flags();
const N = Number(values.requests ?? 20_000);
const BATCHES = Number(values.batches ?? 10);
const ROUNDS = Number(values.rounds ?? 3);
const config = benchConfig(new URL('./configs/full.yaml', import.meta.url), 'full.yaml');

// What bench/upstream.ts answers (uWS adds its own `uwebsockets` header).
const PAYLOAD = Buffer.alloc(1068, 0x20);
const upstreamHeaders = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'uwebsockets', '20'];
const terminal: Handler = () => new Observable<GatewayResponse>((s) => {
  s.next({ status: 200, headers: upstreamHeaders.slice(), body: new BufferedBody([PAYLOAD]) });
  s.complete();
});

/** The route's handler with only the stages `keep` accepts. */
function build(keep: (stage: string) => boolean): Handler {
  return routeHandler(config, keep, terminal);
}

const HEADERS = { host: '127.0.0.1:8080', authorization };
const request = (): GatewayRequest => benchRequest('/item', HEADERS);

const observer = new DrainingObserver();

/** One request, as the edge starts it (RouteTable.start): the handler's `start` with a plain observer when it has one. */
function send(handler: Handler): void {
  const start = (handler as Partial<Startable>).start;
  if (start !== undefined) start(request(), observer);
  else handler(request()).subscribe(observer);
}

/** The process's CPU time (default: a batch descheduled on the shared machine does not count its wait) or wall time, in ns. */
const CPU_CLOCK = (values.clock ?? 'cpu') === 'cpu';
function nsNow(): number {
  if (!CPU_CLOCK) return Number(process.hrtime.bigint());
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

function batch(handler: Handler): number {
  const n = Math.floor(N / BATCHES);
  const t0 = nsNow();
  for (let i = 0; i < n; i++) send(handler);
  const ns = (nsNow() - t0) / n;
  if (observer.failed !== null) throw observer.failed;
  return ns;
}

const cases: Array<[string, Handler]> = [
  ['the full-hit route (auth, rate limit, cache hit)', build(() => true)],
  ['without auth', build((s) => s !== 'auth')],
  ['without rate limit', build((s) => s !== 'rateLimit')],
  ['cache alone', build((s) => s === 'cache')],
  ['no stages (the fake upstream answers)', build(() => false)],
];
// A first request stores the entry and puts the token in the verifier's
// cache; waited for until it has completed (its token check is a Promise,
// which a loaded machine may take more than a fixed wait to settle: every
// request of a batch would then verify the token again, ~18 µs each).
let firstDone = 0;
const first = { next: (res: GatewayResponse) => observer.next(res), error: (err: unknown) => observer.error(err), complete: () => { firstDone++; } };
for (const [, h] of cases) h(request()).subscribe(first);
for (let t = 0; firstDone < cases.length; t++) {
  if (t > 500 || observer.failed !== null) throw observer.failed ?? new Error('the first requests did not complete');
  await new Promise((resolve) => setTimeout(resolve, 10));
}
for (const [, h] of cases) batch(h); // warm every case before measuring any
if (values.alloc === true) {
  // Nothing is collected between the two readings (a young generation big
  // enough for them), so their difference is what the requests allocated.
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('--alloc needs node --expose-gc');
  console.log('| case | bytes/request |\n|---|---:|');
  for (const [name, h] of cases) {
    const per: number[] = [];
    for (let k = 0; k < 7; k++) {
      gc();
      const before = process.memoryUsage().heapUsed;
      for (let i = 0; i < N; i++) send(h);
      per.push((process.memoryUsage().heapUsed - before) / N);
    }
    console.log(`| ${name} | ${per.sort((a, b) => a - b)[3]!.toFixed(0)} |`);
  }
  if (observer.failed !== null) throw observer.failed;
  process.exit(0);
}
const best = new Map<string, number>(cases.map(([name]) => [name, Infinity]));
for (let r = 0; r < ROUNDS; r++) {
  for (let b = 0; b < BATCHES; b++) {
    for (const [name, h] of cases) best.set(name, Math.min(best.get(name)!, batch(h)));
  }
}
const all = best.get(cases[0]![0])!;
console.log(`${CPU_CLOCK ? 'CPU' : 'wall'} ns per request, min of ${BATCHES * ROUNDS} batches of ${Math.floor(N / BATCHES)}\n`);
console.log('| case | ns/request | all − this |\n|---|---:|---:|');
for (const [name] of cases) {
  const ns = best.get(name)!;
  console.log(`| ${name} | ${ns.toFixed(0)} | ${name === cases[0]![0] ? '—' : (all - ns).toFixed(0)} |`);
}
if (observer.bytes === 0) throw new Error('no body bytes reached the sink');
process.exit(0);
