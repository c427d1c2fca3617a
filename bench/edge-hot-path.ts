/**
 * What the edge costs per request in one process, with no network: a
 * gateway built by `buildGateway` from `bench/configs/bare.yaml` and
 * `full.yaml` (limits, observers, metrics, request ids as the CLI has them),
 * its terminal `forward` replaced by a synchronous fake upstream answering
 * the bench's head and 1068-byte body, and uWS's request and response
 * replaced by plain objects with the same methods (so uWS's own native work,
 * the address system call and the send are not in these figures). Each
 * request goes through `Edge.handle` as uWS would call it: head read,
 * routed, the pipeline started, the response written.
 *
 * Cases: `bare` (a forward-only route, started without an Observable),
 * `full-hit` (auth, rate limit, cache hit; one URL), and `error` (a 404 on a
 * route-less path of the bare gateway). Reported: ns per request (minimum
 * CPU time over batches, cases interleaved) and bytes allocated per request (heap
 * growth over a batch run between forced GCs, with a young generation large
 * enough that no GC runs inside it: deterministic to a few bytes).
 *
 *   node --expose-gc --min-semi-space-size=128 --max-semi-space-size=128 \
 *     --import ./bin/loader/register.mjs bench/edge-hot-path.ts [--batches 20] [--requests 2000]
 */
import { parseArgs } from 'node:util';
import { Observable, type Observer } from 'rxjs';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { BufferedBody } from '../lib/body.ts';
import { compose } from '../lib/compose.ts';
import { buildGateway } from '../lib/config/build.ts';
import type { Gateway } from '../lib/gateway.ts';
import { silentLogger } from '../lib/observe/log.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../lib/types.ts';
import { authorization, benchConfig } from './route-harness.ts';

const { values } = parseArgs({ options: { requests: { type: 'string' }, batches: { type: 'string' }, only: { type: 'string' }, 'no-bytes': { type: 'boolean' }, sites: { type: 'boolean' } } });
const N = Number(values.requests ?? 2_000);
const BATCHES = Number(values.batches ?? 20);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc (see the header)');

// What bench/upstream.ts answers, as undici hands it over (uWS adds `uwebsockets`; content-length and date are skipped by the writer).
const PAYLOAD = Buffer.alloc(1068, 0x20);
const UPSTREAM_HEADERS = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'date', 'Sun, 29 Nov 2026 07:00:00 GMT',
  'uwebsockets', '20', 'content-length', '1068'];
const answer = (): GatewayResponse => ({ status: 200, headers: UPSTREAM_HEADERS.slice(), body: new BufferedBody([PAYLOAD]) });

/** The fake upstream: an Observable handler, and `start` like `forward`'s for forward-only routes. */
const terminal = Object.assign(
  (() => new Observable<GatewayResponse>((s) => { s.next(answer()); s.complete(); })) as Handler,
  {
    start(_req: GatewayRequest, observer: Observer<GatewayResponse>): null {
      observer.next(answer());
      observer.complete();
      return null;
    },
  },
);

function gateway(file: string, path?: string): Gateway {
  let config = benchConfig(new URL(`./configs/${file}`, import.meta.url), file);
  if (path !== undefined) config = { ...config, routes: [{ ...config.routes[0]!, path }] };
  return buildGateway(config, (ctx) => {
    const stages = ctx.pipeline.map((n) => ctx.stage(n));
    return stages.length === 0 ? terminal : compose(...stages)(terminal);
  }, { logger: silentLogger, tracerProvider: null });
}

let written = 0;
let status = '';
/** uWS's response object, as far as the edge uses it. */
class FakeResponse {
  onAborted(_f: () => void): this { return this; }
  onData(): this { return this; }
  onWritable(): this { return this; }
  getRemoteAddress(): ArrayBuffer { return new Uint8Array([127, 0, 0, 1]).buffer; }
  cork(f: () => void): this { f(); return this; }
  writeStatus(s: string | Uint8Array): this { status = typeof s === 'string' ? s : 'bytes'; return this; }
  writeHeader(_name: unknown, _value: unknown): this { return this; }
  getWriteOffset(): number { return 0; }
  write(chunk: Uint8Array): boolean { written += chunk.byteLength; return true; }
  tryEnd(chunk: Uint8Array, _total: number): [boolean, boolean] { written += chunk.byteLength; return [true, true]; }
  end(body?: string): this { written += body?.length ?? 0; return this; }
  endWithoutBody(): this { return this; }
  close(): this { return this; }
}

/** uWS's request object: a GET with wrk's head and the bench's token. */
class FakeRequest {
  constructor(private readonly url: string, private readonly query: string) {}
  forEach(f: (name: string, value: string) => void): void {
    f('host', '127.0.0.1:19080');
    f('authorization', authorization);
  }
  getCaseSensitiveMethod(): string { return 'GET'; }
  getUrl(): string { return this.url; }
  getQuery(): string | undefined { return this.query; }
}

type Handle = (res: HttpResponse, req: HttpRequest) => void;
const handleOf = (g: Gateway): Handle => {
  const edge = (g as unknown as { edge: { handle: Handle } }).edge;
  return edge.handle.bind(edge);
};
const full = handleOf(gateway('full.yaml'));
const cases: Array<[string, Handle, FakeRequest]> = [
  ['bare', handleOf(gateway('bare.yaml')), new FakeRequest('/bench', 'r=1')],
  ['full-hit', full, new FakeRequest('/bench', 'r=hit')],
  // bare.yaml's route moved to /only/*: the request matches no route.
  ['error (404)', handleOf(gateway('bare.yaml', '/only/*')), new FakeRequest('/bench', '')],
].filter(([name]) => values.only === undefined || name === values.only) as Array<[string, Handle, FakeRequest]>;

const res = new FakeResponse() as unknown as HttpResponse;
function run(handle: Handle, req: FakeRequest, n: number): void {
  for (let i = 0; i < n; i++) handle(res, req as unknown as HttpRequest);
}

// The first full-hit request stores the entry; let the stores settle, then warm every case.
full(res, new FakeRequest('/bench', 'r=hit') as unknown as HttpRequest);
await new Promise((resolve) => setTimeout(resolve, 50));
for (const [, h, r] of cases) run(h, r, N * 5);
await new Promise((resolve) => setTimeout(resolve, 20));

if (values.sites === true) {
  // Where each case's bytes are allocated: V8's sampling heap profiler, collected objects included.
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  for (const [name, h, r] of cases) {
    await session.post('HeapProfiler.startSampling', { samplingInterval: 32, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
    run(h, r, N * 10);
    const { profile } = await session.post('HeapProfiler.stopSampling');
    const bySite = new Map<string, number>();
    const walk = (node: typeof profile.head): void => {
      const key = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.split('/').slice(-2).join('/')}:${node.callFrame.lineNumber + 1}`;
      bySite.set(key, (bySite.get(key) ?? 0) + node.selfSize);
      for (const child of node.children) walk(child);
    };
    walk(profile.head);
    console.log(`\n${name}: bytes per request by allocating function (sampled)`);
    for (const [site, size] of [...bySite].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
      if (size > 0) console.log(`${(size / (N * 10)).toFixed(0).padStart(6)}  ${site}`);
    }
  }
  process.exit(0);
}

const ns = new Map<string, number>(cases.map(([name]) => [name, Infinity]));
const bytes = new Map<string, number[]>(cases.map(([name]) => [name, []]));
for (let b = 0; b < BATCHES; b++) {
  for (const [name, h, r] of cases) {
    // CPU time, not wall time: on a shared machine the process is often off the CPU.
    const t0 = process.cpuUsage();
    run(h, r, N);
    const t = process.cpuUsage(t0);
    ns.set(name, Math.min(ns.get(name)!, ((t.user + t.system) * 1000) / N));
  }
  // Lines and timers queued by the batch run before the next measurement.
  await new Promise((resolve) => setImmediate(resolve));
  for (const [name, h, r] of values['no-bytes'] === true ? [] : cases) {
    gc!();
    const before = process.memoryUsage().heapUsed;
    run(h, r, N);
    bytes.get(name)!.push((process.memoryUsage().heapUsed - before) / N);
  }
  await new Promise((resolve) => setImmediate(resolve));
}
if (written === 0) throw new Error('nothing was written');
const median = (a: number[]): number => a.sort((x, y) => x - y)[a.length >> 1]!;
console.log(`min of ${BATCHES} batches of ${N} (ns), median of ${BATCHES} (bytes); last status ${status}\n`);
console.log('| case | ns/request | bytes/request |\n|---|---:|---:|');
for (const [name] of cases) console.log(`| ${name} | ${ns.get(name)!.toFixed(0)} | ${bytes.get(name)!.length === 0 ? '—' : median(bytes.get(name)!).toFixed(0)} |`);
process.exit(0);
