import type { GatewayConfig } from '../config/schema.ts';
import type { GatewayState } from '../gateway.ts';
import type { Logger } from '../observe/log.ts';
import { after, systemRuntime } from '../runtime.ts';
import type { WorkerPool } from '../server/workers.ts';
import { Controls } from './controls.ts';
import type { ReloadResult, ReloadTrigger } from './reload.ts';

/** Past the drain timeout, how long workers get to close before they are told to stop. */
const STOP_GRACE_MS = 5000; // 5s

/** The main thread of `--workers N`: the admin listener, the file watch, and drain and reload relayed to the workers. */
export interface ServedWorkers {
  readonly adminPort: number | null;
  /** Settles when every worker has exited without being told to drain or stop (none could start, or all crashed). */
  readonly lost: Promise<void>;
  reload(trigger: ReloadTrigger): Promise<ReloadResult>;
  drain(): Promise<void>;
}

/**
 * Runs the main thread's part of workers mode: each worker serves and
 * reloads its own gateway; the main thread answers the admin listener from
 * all of them (metrics added up, the page's data merged), watches the config
 * file, and relays reloads (`pool.reload`) and the drain to every worker.
 * What a reload changes of its own part (the watch, its debounce, the drain
 * timeout its backstop waits for, its log level) it takes from the config
 * the workers applied, as `serve` does for one gateway.
 */
export async function serveWorkers(pool: WorkerPool, config: GatewayConfig, file: string, logger: Logger, adminPort?: number): Promise<ServedWorkers> {
  // Ready once every worker listens (pool.ready), not when the admin listener does.
  let state: GatewayState = 'starting';
  void pool.ready.then(() => { if (state === 'starting') state = 'serving'; });
  let controls: Controls | null = null;
  const reload = async (trigger: ReloadTrigger): Promise<ReloadResult> => {
    const { result, config: next } = await pool.reloadAll(trigger);
    if (result.outcome === 'refused') logger.error({ trigger, message: result.message }, 'config reload refused; the old config keeps serving');
    if (next !== null && controls !== null) {
      controls.setLevel(next);
      controls.apply(next);
    }
    return result;
  };
  controls = await Controls.start(config, {
    file, logger, watch: true,
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
    async drain() {
      state = 'draining';
      own.stopWatching();
      pool.broadcast('drain');
      // Each worker keeps to the drain timeout itself; this is the backstop.
      const timeoutMs = own.drainTimeoutMs + STOP_GRACE_MS;
      let timer: { unsubscribe(): void } | null = null;
      const late = new Promise<void>((resolve) => { timer = after(systemRuntime, timeoutMs, () => { pool.broadcast('stop'); resolve(); }); });
      await Promise.race([pool.exited, late]);
      (timer as { unsubscribe(): void } | null)?.unsubscribe();
      state = 'closed';
      await own.close();
    },
  };
}
