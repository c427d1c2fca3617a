import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { startUpstream } from '../support/servers.ts';
import { startSpanCollector } from '../support/span-collector.ts';
import { until } from '../support/wait.ts';

/**
 * What an SRE reads from a gateway run by the CLI on YAML (audit U's gaps,
 * notes/s10/U-findings.md P2, P3): a breaker's state from the start, and
 * which instances are in rotation now, on one process and across workers.
 */

let runs: RxgateRuns;
let good = '';
let bad = '';
let third = '';
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  // `good` and `third` pass their checks; `bad` answers its /health 500.
  for (const failing of [false, true, false]) {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.statusCode = failing && req.url === '/health' ? 500 : 200;
      res.end('ok');
    });
    closers.push(() => up.close());
    if (good === '') good = up.url;
    else if (bad === '') bad = up.url;
    else third = up.url;
  }
  runs = rxgateRuns();
});

afterAll(async () => {
  runs?.remove();
  for (const close of closers) await close();
});

// The cases run side by side (each starts a gateway of its own and waits on it), each killing its own when it ends
// (through its own context's onTestFinished: vitest does not track concurrent cases in the global one).
async function start({ onTestFinished }: TestContext, yaml: string, args: string[] = [], env: Record<string, string> = {}, nodeFlags: string[] = []): Promise<{ gw: string; admin: string; p: RxgateProcess }> {
  const p = runs.start(['--config', runs.file(yaml), ...args], env, nodeFlags);
  onTestFinished(() => {
    if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
  });
  const gw = await p.logged('rxgate listening');
  const admin = await p.logged('rxgate admin listening');
  return { gw: `http://127.0.0.1:${gw['port'] as number}`, admin: `http://127.0.0.1:${admin['port'] as number}`, p };
}

async function scrape(admin: string): Promise<string> {
  const res = await request(`${admin}/metrics`);
  return res.body.text();
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const healthy = (service: string, instance: string, value: 0 | 1): RegExp => new RegExp(`^rxgate_upstream_healthy\\{service="${service}",instance="${esc(instance)}"\\} ${value}$`, 'm');

describe.concurrent('what /metrics tells an SRE', { timeout: 90_000 }, () => {
  it('has rxgate_circuit_state 0 for every service with a breaker before any request, and none for a service without one', async (ctx) => {
    const { admin } = await start(ctx, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  users: { upstreams: ["${good}"] }
  shop: { upstreams: ["${good}"], circuitBreaker: false }
  orders: { upstreams: ["${good}"] }
routes:
  - { path: /users/*, service: users }
  - { path: /shop/*, service: shop }
  - { path: /orders/*, service: orders, circuitBreaker: { consecutiveFailures: 5 } }
`);
    const text = await scrape(admin);
    expect(text).toMatch(/^rxgate_circuit_state\{service="users"\} 0$/m);
    expect(text).toMatch(/^rxgate_circuit_state\{service="orders"\} 0$/m);
    expect(text).not.toMatch(/^rxgate_circuit_state\{service="shop"\}/m);
  });

  it('sets rxgate_circuit_state back to 0, and /health to closed, when a reload replaces an open breaker with a new one (review RD 4)', async (ctx) => {
    // A port nothing listens on: every attempt fails (502), and the breaker opens.
    const dead = await startUpstream((_req, res) => res.end());
    const deadUrl = dead.url;
    await dead.close();
    const yaml = (failures: number): string => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  gone: { upstreams: ["${deadUrl}"], retry: false }
routes:
  - { path: /gone/*, service: gone, circuitBreaker: { consecutiveFailures: ${failures} } }
`;
    const file = runs.file(yaml(2));
    const p = runs.start(['--config', file]);
    ctx.onTestFinished(() => {
      if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    });
    const gw = `http://127.0.0.1:${(await p.logged('rxgate listening'))['port'] as number}`;
    const admin = `http://127.0.0.1:${(await p.logged('rxgate admin listening'))['port'] as number}`;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(`${gw}/gone/x`).then(async (r) => { await r.body.dump(); return r; })).statusCode);
    expect(statuses).toEqual([502, 502, 503]);
    expect(await scrape(admin)).toMatch(/^rxgate_circuit_state\{service="gone"\} 2$/m);
    writeFileSync(file, yaml(3));
    const reload = await request(`${admin}/reload`, { method: 'POST' });
    expect(((await reload.body.json()) as { outcome: string }).outcome).toBe('applied');
    // Before: the series stayed 2 (and /health said open) while the new breaker let every request through.
    expect(await scrape(admin)).toMatch(/^rxgate_circuit_state\{service="gone"\} 0$/m);
    const health = (await (await request(`${gw}/__rxgate/health`)).body.json()) as { breakers: Array<{ service: string; state: string }> };
    expect(health.breakers.find((b) => b.service === 'gone')?.state).toBe('closed');
    expect((await request(`${gw}/gone/x`).then(async (r) => { await r.body.dump(); return r; })).statusCode).toBe(502);
  });

  it('exposes rxgate_upstream_healthy 1 for an instance in rotation, 0 for one failing its checks, and drops an instance discovery removed', async (ctx) => {
    const list = join(runs.dir, 'instances.txt');
    writeFileSync(list, `${good}\n${bad}\n${third}\n`);
    const { admin } = await start(ctx, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  users:
    discovery: { file: { path: "${list}", interval: 50ms } }
    health: { path: /health, interval: 100ms, unhealthyAfter: 1, healthyAfter: 1 }
routes:
  - { path: /users/*, service: users }
`);
    await until(async () => healthy('users', bad, 0).test(await scrape(admin)));
    let text = await scrape(admin);
    expect(text).toMatch(healthy('users', good, 1));
    expect(text).toMatch(healthy('users', third, 1));
    writeFileSync(list, `${good}\n${bad}\n`);
    await until(async () => !(await scrape(admin)).includes(`instance="${third}"} `));
    text = await scrape(admin);
    expect(text).toMatch(healthy('users', good, 1));
    expect(text).toMatch(healthy('users', bad, 0));
    expect(text).not.toMatch(new RegExp(`rxgate_upstream_healthy\\{[^}]*instance="${esc(third)}"`));
  });

  it('under --workers 2 shows an instance 1 or 0, not a sum over the workers, and one breaker series per service', async (ctx) => {
    const { admin } = await start(ctx, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  users:
    upstreams: ["${good}", "${bad}"]
    health: { path: /health, interval: 100ms, unhealthyAfter: 1, healthyAfter: 1 }
routes:
  - { path: /users/*, service: users }
`, ['--workers', '2']);
    await until(async () => (await request(`${admin}/ready`).catch(() => null))?.statusCode === 200, { timeout: 40_000 });
    await until(async () => healthy('users', bad, 0).test(await scrape(admin)), { timeout: 10_000 });
    const text = await scrape(admin);
    expect(text).toMatch(healthy('users', good, 1));
    expect(text).toMatch(/^rxgate_circuit_state\{service="users"\} 0$/m);
  });
});

describe.concurrent('traces at exit', { timeout: 60_000 }, () => {
  it('exports the spans of a request that finishes during the drain, with a BatchSpanProcessor and no process.exit wrapper', async (ctx) => {
    // A stand-in collector: each POST is one exported batch (test/support/span-collector.ts).
    const collector = await startSpanCollector();
    const spans = collector.spans;
    closers.push(() => collector.close());
    // An upstream that answers 2 s after the request came.
    let arrived = false;
    const slow = await startUpstream((req, res) => {
      req.resume();
      arrived = true;
      setTimeout(() => res.end('late'), 2000);
    });
    closers.push(() => slow.close());
    const preload = new URL('../support/otel-batch-preload.mjs', import.meta.url).pathname;
    const { gw, p } = await start(ctx, `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
drain: { timeout: 10s }
services:
  slow: { upstreams: ["${slow.url}"] }
routes:
  - { path: /slow, service: slow }
`, [], { OTEL_TEST_COLLECTOR: collector.url }, ['--import', preload]);
    const answer = request(`${gw}/slow`).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }));
    await until(() => arrived);
    p.proc.kill('SIGTERM');
    expect(await answer).toEqual({ status: 200, body: 'late' });
    expect(await p.exited).toBe(0);
    // SERVER (kind 1) and CLIENT (kind 2) of the one request, in one trace.
    expect(spans.map((s) => s.kind).sort()).toEqual([1, 2]);
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
  });
});
