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
 * Reported: ns per request, the minimum over the batches (the
 * least-disturbed batch on a shared machine), cases interleaved.
 *
 *   node --import ./bin/loader/register.mjs bench/cache-hit.ts [--requests 20000] [--batches 10] [--rounds 3]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Observable } from 'rxjs';
import { SignJWT } from 'jose';
import { BufferedBody } from '../lib/body.ts';
import { compose } from '../lib/compose.ts';
import { buildRoutes, type RouteBuildShared } from '../lib/config/build-routes.ts';
import { stageRegistry } from '../lib/config/build.ts';
import { parseConfig } from '../lib/config/load.ts';
import { GatewayEvents } from '../lib/observe/events.ts';
import { silentLogger } from '../lib/observe/log.ts';
import { GatewayMetrics } from '../lib/observe/metrics.ts';
import { observe } from '../lib/observe/wire.ts';
import { Resources } from '../lib/resources/registry.ts';
import { systemRuntime } from '../lib/runtime.ts';
import type { BodySink, GatewayRequest, GatewayResponse, Handler } from '../lib/types.ts';

const { values } = parseArgs({
  options: { requests: { type: 'string' }, batches: { type: 'string' }, rounds: { type: 'string' } },
});
const N = Number(values.requests ?? 20_000);
const BATCHES = Number(values.batches ?? 10);
const ROUNDS = Number(values.rounds ?? 3);
const secret = 'bench-secret-0123456789abcdef0123456789abcdef';
const token = await new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h')
  .sign(new TextEncoder().encode(secret));
const text = readFileSync(new URL('./configs/full.yaml', import.meta.url), 'utf8');
const config = parseConfig(text, 'full.yaml', { BENCH_UPSTREAM: 'http://127.0.0.1:1', BENCH_JWT_SECRET: secret });

// What bench/upstream.ts answers (uWS adds its own `uwebsockets` header).
const PAYLOAD = Buffer.alloc(1068, 0x20);
const upstreamHeaders = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'uwebsockets', '20'];
const terminal: Handler = () => new Observable<GatewayResponse>((s) => {
  s.next({ status: 200, headers: upstreamHeaders.slice(), body: new BufferedBody([PAYLOAD]) });
  s.complete();
});

/** The route's handler with only the stages `keep` accepts. */
function build(keep: (stage: string) => boolean): Handler {
  const events = new GatewayEvents();
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  observe(events, metrics, silentLogger);
  const shared: RouteBuildShared = {
    logger: silentLogger, metrics, runtime: systemRuntime, resources: new Resources(), events,
    stages: stageRegistry(),
    pipeline: (ctx) => compose(...ctx.pipeline.filter(keep).map((n) => ctx.stage(n)))(terminal),
  };
  return buildRoutes(config, shared).routes[0]!.handler;
}

const NO_ORIGINS: readonly string[] = [];
const NO_PARAMS = Object.freeze({}) as Record<string, string>;
const authorization = `Bearer ${token}`;
let counter = 0;
function request(): GatewayRequest {
  // The edge's literal, field for field (lib/server/edge.ts).
  return {
    id: `r${counter++}`, method: 'GET', path: '/item', query: '', normalizedPath: '/item', encodedSlash: false,
    headers: { host: '127.0.0.1:8080', authorization },
    remoteAddress: '127.0.0.1', protocol: 'http', body: null, params: NO_PARAMS, receivedAt: performance.now(),
    locals: {}, attempt: { number: 1, tried: NO_ORIGINS, instance: null },
  };
}

let bytes = 0;
let failed: unknown = null;
const sink: BodySink = { write: (chunk) => { bytes += chunk.byteLength; return true; }, end: () => {} };
const observer = {
  next: (res: GatewayResponse) => {
    if (res.status !== 200) failed = new Error(`status ${res.status}`);
    if (res.body !== null) res.body.pipe(sink);
  },
  error: (err: unknown) => { failed = err; },
  complete: () => {},
};

function batch(handler: Handler): number {
  const n = Math.floor(N / BATCHES);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) handler(request()).subscribe(observer);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  if (failed !== null) throw failed;
  return ns;
}

const cases: Array<[string, Handler]> = [
  ['the full-hit route (auth, rate limit, cache hit)', build(() => true)],
  ['without auth', build((s) => s !== 'auth')],
  ['without rate limit', build((s) => s !== 'rateLimit')],
  ['cache alone', build((s) => s === 'cache')],
  ['no stages (the fake upstream answers)', build(() => false)],
];
// A first request stores the entry and puts the token in the verifier's cache.
for (const [, h] of cases) h(request()).subscribe(observer);
await new Promise((resolve) => setTimeout(resolve, 50));
for (const [, h] of cases) batch(h); // warm every case before measuring any
const best = new Map<string, number>(cases.map(([name]) => [name, Infinity]));
for (let r = 0; r < ROUNDS; r++) {
  for (let b = 0; b < BATCHES; b++) {
    for (const [name, h] of cases) best.set(name, Math.min(best.get(name)!, batch(h)));
  }
}
const all = best.get(cases[0]![0])!;
console.log(`ns per request, min of ${BATCHES * ROUNDS} batches of ${Math.floor(N / BATCHES)}\n`);
console.log('| case | ns/request | all − this |\n|---|---:|---:|');
for (const [name] of cases) {
  const ns = best.get(name)!;
  console.log(`| ${name} | ${ns.toFixed(0)} | ${name === cases[0]![0] ? '—' : (all - ns).toFixed(0)} |`);
}
if (bytes === 0) throw new Error('no body bytes reached the sink');
process.exit(0);
