import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { adminPageRoutes, type Overview, type SeriesAnswer } from '../../lib/admin/page.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { startWorkers, type WorkerPool, type WorkerReply } from '../../lib/server/workers.ts';
import { startUpstream } from '../support/servers.ts';

/**
 * `--workers N`: every worker thread counts its own requests; the pool asks
 * each for its registry and adds them up, so `/metrics` answers for the
 * whole process whichever thread took a connection.
 */

const PIPELINE = new URL('../../pipeline.ts', import.meta.url).href;
/** crash-module's stages and `picky` (refused in one worker thread): test/support/picky-module.ts. */
const PICKY = new URL('../support/picky-module.ts', import.meta.url).href;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** One worker's own count of `route`'s 2xx answers, asked directly (what the pool adds up). */
async function ownCount(pool: WorkerPool, index: number, route: string): Promise<number> {
  const worker = pool.workers[index]!;
  const id = 1_000_000 + index;
  const reply = await new Promise<WorkerReply>((resolve) => {
    const onMessage = (msg: WorkerReply): void => {
      if (msg.id !== id) return;
      worker.off('message', onMessage);
      resolve(msg);
    };
    worker.on('message', onMessage);
    worker.postMessage({ type: 'rxgate:metrics', id });
  });
  const metrics = reply.value as Array<{ name: string; values: Array<{ labels: Record<string, string>; value: number }> }>;
  const requests = metrics.find((m) => m.name === 'rxgate_requests_total');
  return requests?.values.find((v) => v.labels['route'] === route && v.labels['status'] === '2xx')?.value ?? 0;
}

describe('metrics across worker threads', { timeout: 120_000 }, () => {
  it('adds up every worker\'s counts (the totals equal the requests sent), and relays reloads and the drain to every worker', async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.end(req.url === '/api/fail' ? 'no' : 'ok');
    });
    cleanups.push(() => up.close());
    const dir = mkdtempSync(join(tmpdir(), 'rxgate-workers-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = join(dir, 'rxgate.yaml');
    writeFileSync(config, `
log: { level: warn }
services:
  api: { upstreams: ["${up.url}"], timeout: 2s }
routes:
  - { name: api, path: /api/*, service: api }
`);
    const port = await freePort();
    const pool = startWorkers(2, {
      argv: ['--config', config, '--workers', '1', '--port', String(port), '--host', '127.0.0.1'],
      pipelineModule: PIPELINE,
    }, silentLogger);
    cleanups.push(async () => {
      pool.broadcast('stop');
      await pool.exited;
    });
    await pool.ready;
    expect((await pool.overview()).workers).toBe(2);

    // A connection of its own per request, so the kernel spreads them over both threads.
    const SENT = 40;
    for (let i = 0; i < SENT; i++) {
      const agent = new Agent({ connections: 1 });
      const res = await request(`http://127.0.0.1:${port}/api/item/${i}`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      await agent.close();
    }

    const own = [await ownCount(pool, 0, 'api'), await ownCount(pool, 1, 'api')];
    expect(own[0]! + own[1]!).toBe(SENT);
    expect(own.every((n) => n > 0), `each worker took some connections (${own.join(' + ')})`).toBe(true);

    const text = await pool.metrics();
    expect(text).toMatch(new RegExp(`^rxgate_requests_total\\{route="api",status="2xx"\\} ${SENT}$`, 'm'));
    expect(text).toMatch(new RegExp(`^rxgate_request_duration_seconds_count\\{route="api"\\} ${SENT}$`, 'm'));
    expect(text).toMatch(new RegExp(`^rxgate_upstream_duration_seconds_count\\{service="api",instance="${up.url}"\\} ${SENT}$`, 'm'));
    expect(text).toMatch(/^rxgate_upstream_in_flight\{service="api",instance="[^"]+"\} 0$/m);
    // Process metrics once (the main thread's), not once per worker.
    expect(text.match(/^# TYPE rxgate_process_process_cpu_user_seconds_total counter$/gm)).toHaveLength(1);

    // The admin page's data adds up the same way.
    const routes = adminPageRoutes(pool);
    const series = JSON.parse(String((await routes['/api/series']!({ method: 'GET', path: '/api/series', query: 'seconds=120' })).body)) as SeriesAnswer;
    expect(series.routes['api']!.requests.reduce((a, b) => a + b, 0)).toBe(SENT);
    const overview = JSON.parse(String((await routes['/api/overview']!({ method: 'GET', path: '/api/overview', query: '' })).body)) as Overview;
    expect(overview.workers).toBe(2);
    expect(Object.keys(overview.health.services)).toEqual(['api']);
    expect(overview.routes.map((r) => r.name)).toEqual(['api']);

    // A reload reaches every worker; a bad config is refused by them all.
    writeFileSync(config, `
log: { level: warn }
services:
  api: { upstreams: ["${up.url}"], timeout: 2s }
routes:
  - { name: api, path: /api/*, service: api }
  - { name: more, path: /more/*, service: api }
`);
    expect(await pool.reload('admin')).toEqual({ outcome: 'applied' });
    expect((await pool.overview()).routes.map((r) => r.name)).toEqual(['api', 'more']);
    writeFileSync(config, 'routes: [ { path: /x, service: nowhere } ]\n');
    expect((await pool.reload('admin')).outcome).toBe('refused');
    const after = await pool.metrics();
    expect(after).toMatch(/^rxgate_reloads_total\{outcome="applied",trigger="admin"\} 2$/m);
    expect(after).toMatch(/^rxgate_reloads_total\{outcome="refused",trigger="admin"\} 2$/m);

    // A reload with the text the main thread read: every worker applies it, whatever the file says by then (still the bad one).
    expect(await pool.reload('admin', `
log: { level: warn }
services:
  api: { upstreams: ["${up.url}"], timeout: 2s }
routes:
  - { name: api, path: /api/*, service: api }
  - { name: text, path: /text/*, service: api }
`)).toEqual({ outcome: 'applied' });
    expect((await pool.overview()).routes.map((r) => r.name)).toEqual(['api', 'text']);

    // Drain: every worker finishes and exits.
    pool.broadcast('drain');
    await pool.exited;
  });
});

/** The routes one worker serves, asked of it directly; null when it has exited. */
async function routesOf(worker: Worker, id: number): Promise<string[] | null> {
  return new Promise((resolve) => {
    const onMessage = (msg: WorkerReply): void => {
      if (msg.id !== id) return;
      done();
      resolve((msg.value as Overview).routes.map((r) => r.name));
    };
    const onExit = (): void => { done(); resolve(null); };
    const done = (): void => { worker.off('message', onMessage); worker.off('exit', onExit); };
    worker.on('message', onMessage);
    worker.once('exit', onExit);
    worker.postMessage({ type: 'rxgate:overview', id });
  });
}

describe('a reload of every worker', { timeout: 120_000 }, () => {
  async function pool(routes: string, count = 2): Promise<{ pool: WorkerPool; port: number; config: (extra: string, top?: string) => string }> {
    const up = await startUpstream((req, res) => { req.resume(); res.end('ok'); });
    cleanups.push(() => up.close());
    const config = (extra: string, top = ''): string => `
log: { level: warn }
${top}
services:
  api: { upstreams: ["${up.url}"], timeout: 2s }
routes:
  - { name: api, path: /api/*, service: api, pipeline: [crash], crash: true }
${extra}`;
    const dir = mkdtempSync(join(tmpdir(), 'rxgate-workers-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'rxgate.yaml');
    writeFileSync(file, config(routes));
    const port = await freePort();
    const started = startWorkers(count, {
      argv: ['--config', file, '--workers', '1', '--port', String(port), '--host', '127.0.0.1'],
      pipelineModule: PICKY,
      configText: config(routes),
    }, silentLogger);
    cleanups.push(async () => {
      started.broadcast('stop');
      await started.exited;
    });
    await started.ready;
    return { pool: started, port, config };
  }

  it('is refused by every worker when one refuses it: the others go back to the config they ran and count it refused too', async () => {
    const { pool: workers, config } = await pool('');
    const refusedIn = workers.workers[0]!.threadId;
    const result = await workers.reload('admin', config(`  - { name: picky, path: /picky/*, service: api, pipeline: [picky], picky: ${refusedIn} }`));
    expect(result.outcome).toBe('refused');
    expect(result.message).toContain(`refused in worker thread ${refusedIn}`);
    // Before, the other worker kept serving /picky/* beside one that did not: two configs behind one port.
    expect(await Promise.all(workers.workers.map((w, i) => routesOf(w, 2_000_000 + i)))).toEqual([['api'], ['api']]);
    const text = await workers.metrics();
    expect(text).toMatch(/^rxgate_reloads_total\{outcome="refused",trigger="admin"\} 2$/m);
    expect(text).not.toMatch(/^rxgate_reloads_total\{outcome="applied"/m);
    // A text both apply is applied by both.
    expect(await workers.reload('admin', config('  - { name: more, path: /more/*, service: api }'))).toEqual({ outcome: 'applied' });
    expect(await Promise.all(workers.workers.map((w, i) => routesOf(w, 2_000_010 + i)))).toEqual([['api', 'more'], ['api', 'more']]);
  });

  it('brings a worker started while it is under way (a crash\'s replacement) to its text before it answers', async () => {
    const { pool: workers, port, config } = await pool('');
    const closed = await freePort();
    // Redis on a port nothing listens on: the reload waits ~3 s for it (then serves with the stores falling back).
    const slow = config('  - { name: slow, path: /slow/*, service: api, rateLimit: { limit: 100, window: 1m, key: ip, store: redis } }',
      `redis: { url: "redis://127.0.0.1:${closed}" }`);
    const before = new Set(workers.workers);
    const reloading = workers.reload('admin', slow);
    // A worker crashes meanwhile; its replacement starts from the text the workers ran so far.
    const agent = new Agent({ connections: 1 });
    cleanups.push(() => agent.close());
    const crash = await request(`http://127.0.0.1:${port}/api/crash`, { dispatcher: agent });
    expect([crash.statusCode, await crash.body.text()]).toEqual([200, 'ok']);
    for (let i = 0; i < 100 && workers.workers.every((w) => before.has(w)); i++) await new Promise((r) => setTimeout(r, 50));
    expect(await reloading).toEqual({ outcome: 'applied' });
    const replacements = workers.workers.filter((w) => !before.has(w));
    expect(replacements.length).toBeGreaterThanOrEqual(1);
    // Every live worker, the replacement too, serves the reloaded routes (before: the replacement served the old ones).
    const routes = (await Promise.all(workers.workers.map((w, i) => routesOf(w, 2_000_020 + i)))).filter((r) => r !== null);
    expect(routes.length).toBeGreaterThanOrEqual(2);
    for (const r of routes) expect(r).toEqual(['api', 'slow']);
  });
});

describe('the process totals when a worker is replaced', { timeout: 120_000 }, () => {
  it('keep a crashed worker\'s counters and histograms: no total goes down when it exits (Prometheus would read a reset)', async () => {
    const up = await startUpstream((req, res) => { req.resume(); res.end('ok'); });
    cleanups.push(() => up.close());
    const text = `
log: { level: warn }
services:
  api: { upstreams: ["${up.url}"], timeout: 2s }
routes:
  - { name: api, path: /api/*, service: api, pipeline: [crash], crash: true }
`;
    const port = await freePort();
    const pool = startWorkers(2, { argv: ['--config', '/nonexistent.yaml', '--workers', '1', '--port', String(port), '--host', '127.0.0.1'], pipelineModule: PICKY, configText: text }, silentLogger);
    cleanups.push(async () => {
      pool.broadcast('stop');
      await pool.exited;
    });
    await pool.ready;
    const total = (body: string, series: string): number => Number(new RegExp(`^${series.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm').exec(body)?.[1] ?? 0);
    const SENT = 20;
    for (let i = 0; i < SENT; i++) {
      const agent = new Agent({ connections: 1 });
      const res = await request(`http://127.0.0.1:${port}/api/item/${i}`, { dispatcher: agent });
      await res.body.text();
      await agent.close();
    }
    const before = new Set(pool.workers);
    const agent = new Agent({ connections: 1 });
    const crash = await request(`http://127.0.0.1:${port}/api/crash`, { dispatcher: agent });
    expect([crash.statusCode, await crash.body.text()]).toEqual([200, 'ok']);
    await agent.close();
    // The crashed worker drains and exits (it leaves the pool); its replacement listens.
    for (let i = 0; i < 400 && pool.workers.filter((w) => before.has(w)).length > 1; i++) await new Promise((r) => setTimeout(r, 50));
    expect(pool.workers.filter((w) => before.has(w))).toHaveLength(1);
    const after = await pool.metrics();
    // Before, the crashed worker's share left the sum: the totals dropped to the survivor's.
    expect(total(after, 'rxgate_requests_total{route="api",status="2xx"}')).toBe(SENT + 1);
    expect(total(after, 'rxgate_request_duration_seconds_count{route="api"}')).toBe(SENT + 1);
    expect(total(after, `rxgate_upstream_duration_seconds_count{service="api",instance="${up.url}"}`)).toBe(SENT + 1);
    // Gauges are the live workers' alone.
    expect(after).toMatch(/^rxgate_upstream_in_flight\{service="api",instance="[^"]+"\} 0$/m);
    expect(after.match(/^# TYPE rxgate_requests_total counter$/gm)).toHaveLength(1);
  });
});
