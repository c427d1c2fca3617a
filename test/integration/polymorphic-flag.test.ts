import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { rxgateRuns } from '../support/rxgate-process.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';

// The CLI sets --max-valid-polymorphic-map-count=16 at start
// (docs/performance-policies.md, eleventh round). V8 has no way to read a
// flag back, so this watches what it changes: V8's --log-ic logs every
// inline cache's state change (0, 1 monomorphic, P polymorphic, N
// megamorphic) with the property's name. `spilled` is a field only the
// subscriber bases (lib/inner-subscriber.ts, lib/observer-subscriber.ts)
// have, and their methods see every stage's subscriber class: seven here
// (timeout's, rate limit's, retry's, the breaker's, the cache's, CORS's,
// compression's), past V8's default of four.

const runs = rxgateRuns();
let logs = 0;
const upstreams: TestUpstream[] = [];
afterAll(async () => {
  runs.remove();
  for (const u of upstreams) await u.close();
});

/**
 * Starts the CLI under `nodeFlags` with V8's inline-cache log, sends
 * `perRoute` requests to each of three routes that together run seven
 * subscriber classes, stops it, and returns the number of distinct sites
 * whose inline cache for `spilled` went megamorphic.
 */
async function megamorphicSpilledSites(nodeFlags: string[], perRoute: number): Promise<{ sites: number; seen: number }> {
  const upstream = await startUpstream((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'max-age=60');
    res.end(`{"a":"${'x'.repeat(2048)}"}`);
  });
  upstreams.push(upstream);
  const config = runs.file(`services:
  up: { upstreams: ["${upstream.url}"] }
routes:
  - path: /p/*
    service: up
    rateLimit: { limit: 1000000000, window: 1s }
    circuitBreaker: { failureRate: 0.5, minimumCalls: 100, window: 10s, resetTimeout: 5s }
    retry: { attempts: 2 }
    timeouts: { total: 10s, perAttempt: 5s }
  - path: /c/*
    service: up
    cache: { ttl: 60s }
  - path: /x/*
    service: up
    cors: { origins: ["*"] }
    compression: true
`);
  const log = join(runs.dir, `v8-${logs++}.log`);
  const gateway = runs.start(['--config', config, '--port', '0', '--host', '127.0.0.1'], { RXGATE_LOG_LEVEL: 'info' },
    ['--log-ic', `--logfile=${log}`, '--no-logfile-per-isolate', ...nodeFlags]);
  const port = Number((await gateway.logged('rxgate listening'))['port']);
  for (let i = 0; i < perRoute; i++) {
    for (const [path, headers] of [['p', {}], ['c', {}], ['x', { origin: 'https://a.example', 'accept-encoding': 'gzip' }]] as const) {
      const res = await request(`http://127.0.0.1:${port}/${path}/${i}`, { headers });
      expect(res.statusCode).toBe(200);
      await res.body.arrayBuffer();
    }
  }
  gateway.proc.kill('SIGTERM');
  await gateway.exited;
  // LoadIC,<pc>,<time>,<line>,<column>,<old state>,<new state>,<map>,<key>,…
  const megamorphic = new Set<string>();
  let seen = 0;
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const f = line.split(',');
    if (!/IC$/.test(f[0] ?? '') || f[8] !== 'spilled') continue;
    if (f[6] === 'P') seen++;
    if (f[6] === 'N') megamorphic.add(f[1]!);
  }
  return { sites: megamorphic.size, seen };
}

// The two gateways run side by side.
describe.concurrent('the inline-cache limit the CLI sets at start', { timeout: 90_000 }, () => {
  it('keeps the subscriber bases\' field accesses polymorphic with seven stage subscriber classes in the process', async () => {
    const { sites, seen } = await megamorphicSpilledSites([], 150);
    expect(seen).toBeGreaterThan(0); // the sites did see several classes
    expect(sites).toBe(0);
  });

  it('leaves the limit to node when it is on node\'s command line (V8\'s default 4: those accesses go megamorphic)', async () => {
    const { sites } = await megamorphicSpilledSites(['--max-valid-polymorphic-map-count=4'], 150);
    expect(sites).toBeGreaterThan(0);
  });
});
