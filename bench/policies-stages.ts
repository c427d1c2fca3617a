/**
 * What the policies route's stages cost per request, in one process, with
 * no network: the route built from `bench/configs/policies.yaml` the way the
 * gateway builds it (config loader, stage registry, route builder, the
 * events wired to metrics), with the terminal `forward` replaced by a fake
 * upstream. Each case drops one stage (or all) from the route's pipeline;
 * the difference to "all stages" is that stage's cost.
 *
 * Two fake upstreams:
 * - `sync`: answers during subscribe (`of(response)`): every stage's
 *   synchronous-head shortcut is taken (a timeout starts no deadline).
 * - `later`: keeps the subscriber and answers `--inflight` requests at once
 *   after they were all subscribed, as the event loop does with many
 *   connections: deadlines join and leave their lists, permits stay open.
 *
 * Requests are started as the edge starts them (`RouteTable.start`): through
 * the handler's `start` with the edge's plain observer when it has one, and
 * the fake upstream is startable too, returning a teardown object of its
 * own as `forward` returns its exchange.
 *
 * Reported: ns per request, the minimum over `--batches` batches (the
 * least-disturbed batch on a shared machine), cases interleaved; the
 * process's CPU time by default (`--clock wall` for elapsed time).
 *
 *   node --import ./bin/loader/register.mjs bench/policies-stages.ts [--mode later] [--requests 20000] [--clock cpu|wall]
 *   node --expose-gc --min-semi-space-size=64 --max-semi-space-size=64 --import ./bin/loader/register.mjs bench/policies-stages.ts --alloc
 *   node --import ./bin/loader/register.mjs bench/policies-stages.ts --cold 2048   # caches evicted around each request
 *   node --import ./bin/loader/register.mjs bench/policies-stages.ts --mixed   # after other routes' stages ran; adds the full route
 *   node --import ./bin/loader/register.mjs bench/policies-stages.ts --expire 61000   # measured, every cached token expired once under load, measured again
 */
import { parseArgs } from 'node:util';
import { Observable, type Observer } from 'rxjs';
import { parseConfig } from '../lib/config/load.ts';
import { BadGatewayError } from '../lib/errors.ts';
import { setGatewayV8Flags } from '../lib/runtime.ts';
import type { Startable } from '../lib/subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../lib/types.ts';
import { authorization, benchConfig, benchRequest, routeHandler } from './route-harness.ts';

const { values } = parseArgs({
  options: {
    mode: { type: 'string' }, requests: { type: 'string' }, batches: { type: 'string' }, inflight: { type: 'string' },
    config: { type: 'string' }, clock: { type: 'string' }, rounds: { type: 'string' }, only: { type: 'string' }, alloc: { type: 'boolean' }, single: { type: 'boolean' },
    cold: { type: 'string' }, retried: { type: 'boolean' }, mixed: { type: 'boolean' }, expire: { type: 'string' },
  },
});
// The V8 flags the gateway's CLI sets at start (unless given to node here).
setGatewayV8Flags();
const MODE = values.mode ?? 'later';
const N = Number(values.requests ?? 20_000);
const BATCHES = Number(values.batches ?? 15);
const INFLIGHT = Number(values.inflight ?? 50);
const ROUNDS = Number(values.rounds ?? 3);
/**
 * `--cold KB`: before each request's start and each response, write one
 * byte per 64-byte line of a KB-sized buffer, evicting the caches (L2 on
 * this machine is inclusive of L1, so code too), as uWS, undici and the
 * kernel do between two requests in the gateway. Every case pays the same
 * eviction, so "all − without" stays a stage's cost, now with cold caches.
 */
const COLD = new Uint8Array(Number(values.cold ?? 0) * 1024);
function evict(): void {
  for (let i = 0; i < COLD.length; i += 64) COLD[i]!++;
}
/**
 * `--expire MS`: the cases are measured, then the wall clock (Date.now, what
 * auth's token cache reads) moves MS ahead while INFLIGHT requests of each
 * case are started, so with MS past `tokenCacheTtl` (60 s) every one of them
 * finds its token expired and takes the asynchronous verification (a Promise,
 * RxJS's `from` and `switchMap`), as a gateway's requests do once a minute;
 * then the cases are measured again. `--expire 0` is the control: the same
 * requests and wait, nothing expires.
 */
const EXPIRE = values.expire === undefined ? null : Number(values.expire);
const realDateNow = Date.now;
let skewMs = 0;
if (EXPIRE !== null) Date.now = () => realDateNow() + skewMs;
const config = benchConfig(values.config ?? new URL('./configs/policies.yaml', import.meta.url), 'policies.yaml');

const resHeaders = ['content-type', 'application/json', 'content-length', '1068', 'date', 'Sun, 29 Nov 2026 04:00:00 GMT'];
const pending: Array<Observer<GatewayResponse>> = [];
/**
 * `--retried`: after the warm-up, one request of the all-stages case fails
 * once (a 502) and is retried, so that retry's subscriber for a later
 * attempt (AttemptSubscriber) has run before anything is measured, as after
 * a gateway's first retry: a fifth InnerSubscriber class through the
 * shared methods (docs/performance-policies.md, tenth round).
 */
const failOnce = new Set<Observer<GatewayResponse>>();
let failNext = false;
/** What `forward`'s start returns: the exchange, which cancels the upstream request. */
class FakeExchange {
  cancelled = false;
  unsubscribe(): void {
    this.cancelled = true;
  }
}
const terminal: Handler = MODE === 'sync'
  ? () => new Observable<GatewayResponse>((s) => {
    s.next({ status: 200, headers: resHeaders, body: null });
    s.complete();
  })
  : Object.assign(() => new Observable<GatewayResponse>((s) => {
    pending.push(s);
  }), {
    start(_req: GatewayRequest, observer: Observer<GatewayResponse>) {
      pending.push(observer);
      if (failNext) {
        failNext = false;
        failOnce.add(observer);
      }
      return new FakeExchange();
    },
  } satisfies Startable);
function flush(): void {
  for (let i = 0; i < pending.length; i++) {
    const s = pending[i]!;
    if (COLD.length > 0) evict();
    if (failOnce.delete(s)) {
      s.error(new BadGatewayError('retried once'));
      continue;
    }
    s.next({ status: 200, headers: resHeaders, body: null });
    s.complete();
  }
  pending.length = 0;
}

/** The route's handler with `without` left out of its pipeline ('*': every stage; '=name': only that one). */
function build(without: string | null): Handler {
  const keep = (n: string): boolean => without === null ? true : without === '*' ? false : without.startsWith('=') ? n === without.slice(1) : n !== without;
  return routeHandler(config, keep, terminal);
}

const HEADERS = { host: 'gateway', authorization, 'user-agent': 'wrk' };
const request = (): GatewayRequest => benchRequest('/bench', HEADERS);

let done = 0;
let failed: unknown = null;
const observer = {
  next: (res: GatewayResponse) => { if (res.status !== 200) failed = new Error(`status ${res.status}`); },
  error: (err: unknown) => { failed = err; },
  complete: () => { done++; },
};

function run(handler: Handler, n: number, make: () => GatewayRequest = request): void {
  for (let i = 0; i < n; i++) {
    // As the edge does (RouteTable.start): started with its plain observer when the handler can start.
    const start = (handler as Partial<Startable>).start;
    if (COLD.length > 0) evict();
    if (start !== undefined) start(make(), observer);
    else handler(make()).subscribe(observer);
    if (pending.length >= INFLIGHT) flush();
  }
  flush();
  if (failed !== null) throw failed;
}

/**
 * CPU time of the process (`--clock cpu`, the default: on a shared machine a
 * batch that is descheduled does not count its wait) or wall time.
 */
const CPU_CLOCK = (values.clock ?? 'cpu') === 'cpu';
function nsNow(): number {
  if (!CPU_CLOCK) return Number(process.hrtime.bigint());
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

function batch(handler: Handler, make?: () => GatewayRequest): number {
  const n = Math.floor(N / BATCHES);
  const t0 = nsNow();
  run(handler, n, make);
  return (nsNow() - t0) / n;
}

const names = config.routes[0] !== undefined ? ['timeout', 'auth', 'rateLimit', 'retry', 'circuitBreaker', 'attemptTimeout'] : [];
const cases: Array<[string, Handler]> = ([
  ['no stages (terminal only)', build('*')],
  ['all stages (the policies route)', build(null)],
  ...names.map((n): [string, Handler] => [`without ${n}`, build(n)]),
  ...(values.single === true ? names.map((n): [string, Handler] => [`only ${n}`, build(`=${n}`)]) : []),
] as Array<[string, Handler]>).filter(([name]) => values.only === undefined || name.includes(values.only));
/**
 * `--mixed`: other routes' stages run in the same process before anything
 * is warmed up or measured, as in a gateway with more than one kind of
 * route: the full route's cache miss (MissSubscriber), and a route with
 * CORS, compression and response header rules. Every subscriber class of a
 * built-in stage has then been through the shared subscriber bases' methods
 * (docs/performance-policies.md, eleventh round). The full route (a new
 * URL per request: every request a miss that is stored) is measured too.
 */
const MIXED = values.mixed === true;
let missCounter = 0;
const missRequest = (): GatewayRequest => benchRequest(`/bench/${missCounter++}`, HEADERS);
const OTHER = `services:
  echo: { upstreams: ["http://127.0.0.1:1"] }
routes:
  - path: /*
    service: echo
    cors: { origins: ["*"] }
    compression: true
    headers: { response: { remove: [x-powered-by] } }
`;
const misses: Array<[string, Handler, () => GatewayRequest]> = MIXED
  ? [['full route (cache miss)', routeHandler(benchConfig(new URL('./configs/full.yaml', import.meta.url), 'full.yaml'), () => true, terminal), missRequest]]
  : [];
const others: Array<[Handler, () => GatewayRequest]> = MIXED
  ? [[routeHandler(parseConfig(OTHER, 'other.yaml', {}), () => true, terminal), () => benchRequest('/bench', { ...HEADERS, origin: 'https://a.example', 'accept-encoding': 'gzip' })]]
  : [];
// One request first, and a turn for its token check to settle: from then on
// the token is in the verifier's cache, as for a client reusing its token.
for (const [, h] of cases) run(h, 1);
for (const [, h, make] of misses) run(h, 1, make);
for (let t = 0; done < cases.length + misses.length; t++) {
  if (t > 500) throw new Error('the first requests did not complete');
  await new Promise((resolve) => setTimeout(resolve, 10));
  flush();
}
for (const [h, make] of others) run(h, 2_000, make);
for (const [, h, make] of misses) run(h, 2_000, make);
for (const [, h] of cases) run(h, 20_000); // warm up every case before measuring any
for (const [, h, make] of misses) run(h, 20_000, make);
const retried = values.retried === true ? cases.find(([name]) => name.startsWith('all')) : undefined;
if (retried !== undefined) {
  const before = done;
  failNext = true;
  run(retried[1], 1);
  for (let t = 0; done === before; t++) {
    if (t > 500) throw new Error('the retried request did not complete');
    await new Promise((resolve) => setTimeout(resolve, 10));
    flush();
  }
  if (failed !== null) throw failed;
}
if (values.alloc === true) {
  // Bytes allocated per request: run with --expose-gc and a young generation
  // big enough for a batch (--max-semi-space-size=64 --min-semi-space-size=64);
  // nothing is freed between the two readings, so their difference is what
  // the batch allocated. Median of 7. `--requests` per reading (20,000 by
  // default: ~46 MB, and a linear allocation buffer's worth of slack is
  // ~2 B/request; 2,000 left ±50 B between runs).
  const ALLOC_N = Math.min(N, 25_000);
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('--alloc needs node --expose-gc');
  console.log('| case | bytes/request |\n|---|---:|');
  for (const [name, h, make] of [...cases, ...misses] as Array<[string, Handler, (() => GatewayRequest)?]>) {
    const per: number[] = [];
    for (let k = 0; k < 7; k++) {
      gc();
      const before = process.memoryUsage().heapUsed;
      run(h, ALLOC_N, make);
      per.push((process.memoryUsage().heapUsed - before) / ALLOC_N);
    }
    console.log(`| ${name} | ${per.sort((a, b) => a - b)[3]!.toFixed(0)} |`);
  }
  process.exit(0);
}
function measure(): Map<string, number> {
  const best = new Map<string, number>([...cases, ...misses].map(([name]) => [name, Infinity]));
  for (let r = 0; r < ROUNDS; r++) {
    for (let b = 0; b < BATCHES; b++) {
      for (const [name, h] of cases) best.set(name, Math.min(best.get(name)!, batch(h)));
      for (const [name, h, make] of misses) best.set(name, Math.min(best.get(name)!, batch(h, make)));
    }
  }
  return best;
}
function print(best: Map<string, number>, title: string): void {
  const all = best.get('all stages (the policies route)') ?? NaN;
  const none = best.get('no stages (terminal only)') ?? NaN;
  console.log(`${title}mode ${MODE}${MODE === 'later' ? ` (${INFLIGHT} in flight)` : ''}${COLD.length > 0 ? `, caches evicted (${COLD.length >> 10} KB) around each request` : ''}; ${CPU_CLOCK ? 'CPU' : 'wall'} ns/request, min of ${BATCHES * ROUNDS} batches of ${Math.floor(N / BATCHES)}\n`);
  console.log('| case | ns/request | stage cost (all − without) |\n|---|---:|---:|');
  for (const [name] of [...cases, ...misses]) {
    const ns = best.get(name)!;
    const cost = name.startsWith('without') ? (all - ns).toFixed(0) : name.startsWith('all') ? `${(all - none).toFixed(0)} (all stages)` : '—';
    console.log(`| ${name} | ${ns.toFixed(0)} | ${cost} |`);
  }
}
if (EXPIRE !== null) {
  print(measure(), 'before: ');
  skewMs += EXPIRE;
  const before = done;
  for (const [, h] of cases) run(h, INFLIGHT);
  for (let t = 0; done < before + cases.length * INFLIGHT; t++) {
    if (t > 500) throw new Error('the requests with expired tokens did not complete');
    await new Promise((resolve) => setTimeout(resolve, 10));
    flush();
  }
  if (failed !== null) throw failed;
  print(measure(), `\nafter every cached token expired once (the clock ${EXPIRE} ms ahead): `);
} else print(measure(), '');
process.exit(0);
