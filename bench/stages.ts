/**
 * What each real stage of the default pipeline costs per request, with no
 * network: every stage built as pipeline.ts builds it, around a terminal
 * handler that answers a 1 KB body from memory. Reports ns per request
 * (median of batches) above the bare terminal.
 *
 *   node --import ./bin/loader/register.mjs bench/stages.ts [--requests N]
 */
import { parseArgs } from 'node:util';
import { Observable } from 'rxjs';
import { SignJWT } from 'jose';
import { BufferedBody } from '../lib/body.ts';
import { compose } from '../lib/compose.ts';
import { cache } from '../lib/stages/cache/cache.ts';
import { circuitBreaker } from '../lib/stages/circuit-breaker/circuit-breaker.ts';
import { jwtAuth } from '../lib/stages/auth/jwt-auth.ts';
import { rateLimit } from '../lib/stages/rate-limit/rate-limit.ts';
import { retry } from '../lib/stages/retry/retry.ts';
import { timeout } from '../lib/stages/timeout/timeout.ts';
import { setGatewayV8Flags } from '../lib/runtime.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../lib/types.ts';

// The V8 flags the gateway's CLI sets at start (unless given to node here).
setGatewayV8Flags();
const { values } = parseArgs({ options: { requests: { type: 'string' } } });
const N = Number(values.requests ?? 20_000);
const BATCHES = 5;
const secret = '0123456789abcdef0123456789abcdef0123456789abcdef';
const token = await new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h')
  .sign(new TextEncoder().encode(secret));
const payload = Buffer.alloc(1068, 'x');
const headers = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'content-length', '1068'];
const terminal: Handler = () => new Observable<GatewayResponse>((s) => {
  s.next({ status: 200, headers, body: new BufferedBody([payload]) });
  s.complete();
});
let counter = 0;
const request = (): GatewayRequest => ({
  id: 'bench', method: 'GET', path: '/bench', query: `r=${counter++}`, normalizedPath: '/bench',
  headers: { host: 'gateway', authorization: `Bearer ${token}` }, remoteAddress: '127.0.0.1', protocol: 'http',
  body: null, params: {}, receivedAt: 0, locals: {}, attempt: { number: 1, tried: [], instance: null },
});
const sink = { write: () => true, end: () => {} };

function once(handler: Handler): Promise<void> {
  return new Promise((resolve, reject) => {
    handler(request()).subscribe({ next: (res) => res.body?.pipe(sink), error: reject, complete: resolve });
  });
}

async function measure(policies: Policy[]): Promise<number> {
  const handler = compose(...policies)(terminal);
  for (let i = 0; i < 2000; i++) await once(handler);
  const perBatch: number[] = [];
  for (let b = 0; b < BATCHES; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N / BATCHES; i++) await once(handler);
    perBatch.push(Number(process.hrtime.bigint() - t0) / (N / BATCHES));
  }
  return perBatch.sort((a, b) => a - b)[BATCHES >> 1]!;
}

const cases: Array<[string, () => Policy[]]> = [
  ['terminal only', () => []],
  ['jwtAuth (cached token)', () => [jwtAuth({ secret })]],
  ['rateLimit (memory)', () => [rateLimit({ limit: 1e9, window: '1s' })]],
  ['cache (miss + store)', () => [cache({ ttl: '60s', cacheAuthorized: true })]],
  ['timeout', () => [timeout({ head: '10s' })]],
  ['retry (none needed)', () => [retry({ attempts: 2 })]],
  ['circuitBreaker (closed)', () => [circuitBreaker({})]],
  ['full default pipeline', () => [
    jwtAuth({ secret }), rateLimit({ limit: 1e9, window: '1s' }), cache({ ttl: '60s', cacheAuthorized: true }),
    timeout({ head: '10s' }), retry({ attempts: 2 }), circuitBreaker({}), timeout({ head: '5s' }),
  ]],
];

// Warm the shared code paths first, so the baseline is not measured cold.
await measure(cases[cases.length - 1]![1]());
const base = Math.min(await measure([]), await measure([]));
console.log(`| stage | ns/request | above terminal |\n|---|---:|---:|`);
for (const [name, build] of cases) {
  const ns = name === 'terminal only' ? base : await measure(build());
  console.log(`| ${name} | ${ns.toFixed(0)} | ${name === 'terminal only' ? '—' : (ns - base).toFixed(0)} |`);
}
console.log(`\n${N} requests per case (median of ${BATCHES} batches), Node ${process.version}; each request awaits its completion, so the terminal-only row includes one promise per request.`);
