import type { GatewayConfig } from '../config/schema.ts';
import type { GatewayState } from '../gateway.ts';
import type { Logger } from '../observe/log.ts';
import { after, systemRuntime, type Runtime } from '../runtime.ts';
import type { WorkerPool } from '../server/workers.ts';
import { Controls } from './controls.ts';
import type { ReloadResult, ReloadTrigger } from './reload.ts';
import { read } from './watch.ts';

/** Past the drain timeout, how long workers get to close before they are told to stop. */
const STOP_GRACE_MS = 5000; // 5s

/** The main thread of `--workers N`: the admin listener, the file watch, and drain and reload relayed to the workers. */
export interface ServedWorkers {
  readonly adminPort: number | null;
  /** Settles when every worker has exited without being told to drain or stop (none could start, or all crashed). */
  readonly lost: Promise<void>;
  reload(trigger: ReloadTrigger): Promise<ReloadResult>;
  drain(): Promise<void>;
  /** Tells every worker to stop at once (each closes, flushes its tracer and exits); settles when all have exited. */
  stop(): Promise<void>;
}

/**
 * Runs the main thread's part of workers mode: each worker serves and
 * reloads its own gateway; the main thread answers the admin listener from
 * all of them (metrics added up, the page's data merged), watches the config
 * file, and relays reloads (`pool.reload`) and the drain to every worker.
 * What a reload changes of its own part (the watch, its debounce, the drain
 * timeout its backstop keeps to, its log level) it takes from the config
 * the workers applied, as `serve` does for one gateway. `runtime`: the
 * watch's debounce and the backstop's timer.
 */
export async function serveWorkers(
  pool: WorkerPool, config: GatewayConfig, file: string, logger: Logger, adminPort?: number, runtime: Runtime = systemRuntime,
): Promise<ServedWorkers> {
  // Ready once every worker listens (pool.ready), not when the admin listener does.
  let state: GatewayState = 'starting';
  void pool.ready.then(() => { if (state === 'starting') state = 'serving'; });
  let controls: Controls | null = null;
  // A replacement builds from the text the workers started from (startWorkers' configText), until a reload every worker applied.
  /** Reloads whose workers have not all answered yet: a drain's backstop waits for the timeout they set. */
  const reloading = new Set<Promise<ReloadResult>>();
  const relay = async (trigger: ReloadTrigger): Promise<ReloadResult> => {
    // Read before the workers read it: a change made after is newer than what they load, and the watch reloads it.
    const loaded = read(file);
    // Every worker applies this text, not the file as it is when each reads it.
    const { result, config: next } = await pool.reloadAll(trigger, loaded ?? undefined);
    if (result.outcome === 'refused') logger.error({ trigger, message: result.message }, 'config reload refused; the old config keeps serving');
    // A replacement of a crashed worker builds from what the workers run, not from a file they refused or never reloaded.
    if (next !== null && loaded !== null) pool.setConfigText(loaded);
    if (next !== null && controls !== null) {
      controls.setLevel(next);
      controls.apply(next, loaded);
    }
    return result;
  };
  const reload = (trigger: ReloadTrigger): Promise<ReloadResult> => {
    const run = relay(trigger);
    reloading.add(run);
    void run.then(() => reloading.delete(run), () => reloading.delete(run));
    return run;
  };
  controls = await Controls.start(config, {
    file, logger, watch: true, runtime,
    admin: {
      page: pool,
      port: adminPort,
      source: {
        metrics: async () => ({ contentType: pool.contentType, body: await pool.metrics() }),
        health: async () => (await pool.overview()).health,
        state: () => state,
        reload: () => reload('admin'),
      },
    },
    onChange: () => void reload('watch'),
  });
  const own = controls;
  const lost = new Promise<void>((resolve) => { void pool.exited.then(() => { if (state === 'starting' || state === 'serving') resolve(); }); });
  return {
    adminPort: own.adminPort,
    lost,
    reload,
    stop() {
      state = 'closed';
      pool.broadcast('stop');
      return pool.exited;
    },
    async drain() {
      state = 'draining';
      own.stopWatching();
      pool.broadcast('drain');
      // Each worker keeps to the drain timeout it had when told to drain; this is the backstop, armed now with
      // the timeout serving. A reload still in flight may have given some workers a longer one: once its answers
      // are in, the backstop moves out to that one (counted from the signal), never in. It never waits unarmed.
      const started = runtime.now();
      let due = started + own.drainTimeoutMs + STOP_GRACE_MS;
      let timer: { unsubscribe(): void } | null = null;
      let stop!: () => void;
      const late = new Promise<void>((resolve) => { stop = resolve; });
      const arm = (): void => {
        timer?.unsubscribe();
        timer = after(runtime, Math.max(0, due - runtime.now()), () => { timer = null; pool.broadcast('stop'); stop(); });
      };
      arm();
      if (reloading.size > 0) {
        void Promise.allSettled([...reloading]).then(() => {
          const extended = started + own.drainTimeoutMs + STOP_GRACE_MS;
          if (timer !== null && extended > due) {
            due = extended;
            arm();
          }
        });
      }
      await Promise.race([pool.exited, late]);
      (timer as { unsubscribe(): void } | null)?.unsubscribe();
      timer = null; // a reload answered after this moves nothing
      state = 'closed';
      await own.close();
    },
  };
}
