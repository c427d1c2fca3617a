import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VirtualTimeScheduler } from 'rxjs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { controlKeys } from '../../lib/lifecycle/controls.ts';
import type { ReloadTrigger } from '../../lib/lifecycle/reload.ts';
import { serve } from '../../lib/lifecycle/serve.ts';
import { serveWorkers, type ServedWorkers } from '../../lib/lifecycle/serve-workers.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { virtualRuntime, type Runtime } from '../../lib/runtime.ts';
import type { PoolReloaded, WorkerCommand, WorkerPool } from '../../lib/server/workers.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { get } from '../support/answer.ts';
import { startUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * A reload that replaces the file watch (it changed `reload.debounce`) or
 * the drain's backstop (`--workers`, a reload still in flight at SIGTERM):
 * the new watch does not lose a change the file got after the reload read
 * it, and the backstop keeps to the drain timeout the reload gave.
 * One process through `serve`, as the CLI runs it; the main thread of
 * `--workers` through `serveWorkers` with a pool whose workers answer when
 * the test says, on virtual time.
 */

const dir = mkdtempSync(join(tmpdir(), 'rxgate-handover-'));
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const newFile = (): string => join(dir, `rxgate-${files++}.yaml`);

function yaml(url: string, keys: string, paths: readonly string[] = ['/a']): string {
  return `${keys}
services: { up: { upstreams: ["${url}"] } }
routes:
${paths.map((p) => `  - { path: ${p}, service: up }`).join('\n')}
`;
}

/** `serve` on a file with `keys`, as the CLI runs it; `triggers`: its reloads as `trigger:outcome`. `runtime`: a virtual one, for the watch's debounce. */
async function servedOnFile(keys: string, runtime?: Runtime) {
  const up = await startUpstream((req, res) => {
    req.resume();
    res.end('ok');
  });
  cleanups.push(() => up.close());
  const file = newFile();
  const start = yaml(up.url, keys);
  writeFileSync(file, start);
  const served = await serve(parseConfig(start, file), defaultPipeline, {
    file, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0,
    ...(runtime !== undefined ? { runtime } : {}),
  });
  cleanups.push(() => served.close());
  const triggers: string[] = [];
  served.gateway.events.on('reload', (e) => triggers.push(`${e.trigger}:${e.outcome}`));
  return { up, file, served, url: `http://127.0.0.1:${served.port}`, triggers };
}

describe('a reload that replaces the file watch, in one process', () => {
  it('applies a change written while the reload ran, which the new watch never heard of', async () => {
    const { up, file, served, url, triggers } = await servedOnFile('reload: { watch: true, debounce: 1h }');

    writeFileSync(file, yaml(up.url, 'reload: { watch: true, debounce: 20ms }'));
    // reload() reads the file before its first await: the change below comes after it read it, before it applies.
    const applied = served.reload('admin');
    writeFileSync(file, yaml(up.url, 'reload: { watch: true, debounce: 20ms }', ['/a', '/b']));
    expect(await applied).toEqual({ outcome: 'applied' });

    await until(() => triggers.includes('watch:applied'));
    expect((await get(`${url}/b`)).status).toBe(200);
    expect(triggers).toEqual(['admin:applied', 'watch:applied']);
  });

  it('does not reload again what the reload that replaced the watch applied', async () => {
    const vts = new VirtualTimeScheduler(undefined, 0);
    const { up, file, served } = await servedOnFile('reload: { watch: true, debounce: 1h }', virtualRuntime(vts));
    // Every reload as it is asked for (the watch calls the reloader when its debounce passes).
    const asked: ReloadTrigger[] = [];
    const reload = served.reloader.reload.bind(served.reloader);
    served.reloader.reload = (trigger) => { asked.push(trigger); return reload(trigger); };

    writeFileSync(file, yaml(up.url, 'reload: { watch: true, debounce: 20ms }', ['/a', '/b']));
    expect(await served.reload('admin')).toEqual({ outcome: 'applied' });
    // The new watch starts from the content the reload read: past its debounce, with no write since, nothing is due.
    await settle();
    vts.maxFrames = 1000;
    vts.flush();
    await settle();
    expect(asked).toEqual(['admin']);
  });
});

/** A worker pool whose reloads answer when the test resolves them; it records what the main thread tells it. */
class HeldPool {
  readonly told: WorkerCommand[] = [];
  readonly reloads: Array<{ trigger: ReloadTrigger; answer(keys: string): void }> = [];
  private exit!: () => void;
  readonly exited = new Promise<void>((resolve) => { this.exit = resolve; });

  asPool(): WorkerPool {
    return {
      workers: [], contentType: 'text/plain', ready: Promise.resolve(), exited: this.exited,
      metrics: async () => '', overview: async () => ({ routes: [], health: { services: [] } as never }), windows: async () => ({}),
      broadcast: (msg) => { this.told.push(msg); },
      setConfigText: () => {},
      reload: async () => ({ outcome: 'applied' }),
      reloadAll: (trigger) => new Promise<PoolReloaded>((resolve) => {
        this.reloads.push({ trigger, answer: (keys) => resolve({ result: { outcome: 'applied' }, config: controlKeys(parseConfig(yaml('http://127.0.0.1:1', keys), 'w.yaml')) }) });
      }),
    } as WorkerPool;
  }

  /** Every worker has exited. */
  allExited(): void {
    this.exit();
  }
}

/** Lets promise callbacks (the main thread's awaits) run. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function mainThread(keys: string): Promise<{ pool: HeldPool; main: ServedWorkers; file: string; advanceTo(ms: number): Promise<void> }> {
  const vts = new VirtualTimeScheduler(undefined, 0);
  const file = newFile();
  const text = yaml('http://127.0.0.1:1', keys);
  writeFileSync(file, text);
  const pool = new HeldPool();
  const main = await serveWorkers(pool.asPool(), parseConfig(text, file), file, silentLogger, undefined, virtualRuntime(vts));
  const advanceTo = async (ms: number): Promise<void> => {
    await settle();
    vts.maxFrames = ms;
    vts.flush();
    // The clock stands at the last action run: move it on to `ms`.
    vts.frame = Math.max(vts.frame, ms);
    await settle();
  };
  return { pool, main, file, advanceTo };
}

/** The main thread watching its file with a 1 h debounce; drained after the test. */
async function watchingMainThread(): ReturnType<typeof mainThread> {
  const t = await mainThread('reload: { watch: true, debounce: 1h }');
  cleanups.push(async () => {
    const drained = t.main.drain();
    t.pool.allExited();
    await drained;
  });
  return t;
}

/** The backstop tells the workers to stop at `ms`, not a millisecond sooner; then they exit and the drain ends. */
async function stopsAt(ms: number, t: { pool: HeldPool; advanceTo(ms: number): Promise<void> }, drained: Promise<void>): Promise<void> {
  await t.advanceTo(ms - 1);
  expect(t.pool.told).toEqual(['drain']);
  await t.advanceTo(ms);
  expect(t.pool.told).toEqual(['drain', 'stop']);
  t.pool.allExited();
  await drained;
}

describe('--workers: the main thread during a reload', () => {
  it('a SIGTERM while a reload that raises drain.timeout is in flight: the backstop keeps to the raised timeout', async () => {
    const { pool, main, advanceTo } = await mainThread('drain: { timeout: 300ms }\nreload: { watch: false }');
    void main.reload('admin');
    expect(pool.reloads).toHaveLength(1);
    const drained = main.drain();
    expect(pool.told).toEqual(['drain']);
    // The workers answer before the old backstop (300 ms + 5 s) is due: it moves out, counted from the signal.
    await advanceTo(5000);
    pool.reloads[0]!.answer('drain: { timeout: 20s }\nreload: { watch: false }');
    await stopsAt(25_000, { pool, advanceTo }, drained);
  });

  it('a SIGTERM while a reload that never answers is in flight: the backstop keeps to the drain timeout serving', async () => {
    const { pool, main, advanceTo } = await mainThread('drain: { timeout: 1s }\nreload: { watch: false }');
    void main.reload('signal');
    const drained = main.drain();
    await stopsAt(6000, { pool, advanceTo }, drained);
  });

  it('a SIGTERM while a reload is in flight whose answers come after the backstop told the workers to stop: nothing more is told', async () => {
    const { pool, main, advanceTo } = await mainThread('drain: { timeout: 1s }\nreload: { watch: false }');
    void main.reload('admin');
    const drained = main.drain();
    await advanceTo(6000);
    expect(pool.told).toEqual(['drain', 'stop']);
    pool.reloads[0]!.answer('drain: { timeout: 20s }\nreload: { watch: false }');
    await advanceTo(60_000);
    expect(pool.told).toEqual(['drain', 'stop']);
    pool.allExited();
    await drained;
  });

  it('a SIGTERM while a reload that lowers drain.timeout is in flight: workers that had not applied it keep the old one, and so does the backstop', async () => {
    const { pool, main, advanceTo } = await mainThread('drain: { timeout: 20s }\nreload: { watch: false }');
    void main.reload('admin');
    const drained = main.drain();
    pool.reloads[0]!.answer('drain: { timeout: 300ms }\nreload: { watch: false }');
    await stopsAt(25_000, { pool, advanceTo }, drained);
  });

  it('a SIGTERM with no reload in flight: the backstop is the drain timeout serving, plus 5 s', async () => {
    const { pool, main, advanceTo } = await mainThread('drain: { timeout: 300ms }\nreload: { watch: false }');
    const drained = main.drain();
    await stopsAt(5300, { pool, advanceTo }, drained);
  });

  it('a reload that replaces the watch: what the workers applied is not reloaded again by the new watch', async () => {
    const { pool, main, file, advanceTo } = await watchingMainThread();
    const next = 'reload: { watch: true, debounce: 20ms }';
    writeFileSync(file, yaml('http://127.0.0.1:1', next, ['/a', '/b']));
    void main.reload('admin');
    pool.reloads[0]!.answer(next);
    // Past the new watch's debounce, with no write since the main thread read the file.
    await advanceTo(1000);
    expect(pool.reloads.map((r) => r.trigger)).toEqual(['admin']);
  });

  it('a reload that replaces the watch: a change written after the main thread read the file is reloaded by the new watch', async () => {
    const { pool, main, file, advanceTo } = await watchingMainThread();
    const next = 'reload: { watch: true, debounce: 20ms }';
    writeFileSync(file, yaml('http://127.0.0.1:1', next));
    void main.reload('admin');
    // The workers read the file after the main thread did; then it changes again.
    writeFileSync(file, yaml('http://127.0.0.1:1', next, ['/a', '/b']));
    pool.reloads[0]!.answer(next);
    await advanceTo(20);
    expect(pool.reloads.map((r) => r.trigger)).toEqual(['admin', 'watch']);
  });
});
