import { AdminListener, adminRoutes } from '../admin/listener.ts';
import { adminPageRoutes } from '../admin/page.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { parseDuration } from '../duration.ts';
import type { GatewayState } from '../gateway.ts';
import type { Logger } from '../observe/log.ts';
import { after, systemRuntime } from '../runtime.ts';
import type { WorkerPool } from '../server/workers.ts';
import type { ReloadResult, ReloadTrigger } from './reload.ts';
import { ADMIN_DEFAULTS, DRAIN_TIMEOUT, RELOAD_DEBOUNCE } from './schema.ts';
import { ConfigWatcher } from './watch.ts';

/** Past the drain timeout, how long workers get to close before they are told to stop. */
const STOP_GRACE_MS = 5000; // 5s

/** The main thread of `--workers N`: the admin listener, the file watch, and drain and reload relayed to the workers. */
export interface ServedWorkers {
  readonly adminPort: number | null;
  reload(trigger: ReloadTrigger): Promise<ReloadResult>;
  drain(): Promise<void>;
}

/**
 * Runs the main thread's part of workers mode: each worker serves and
 * reloads its own gateway; the main thread answers the admin listener from
 * all of them (metrics added up, the page's data merged), watches the config
 * file, and relays reloads (`pool.reload`) and the drain to every worker.
 */
export async function serveWorkers(pool: WorkerPool, config: GatewayConfig, file: string, logger: Logger, adminPort?: number): Promise<ServedWorkers> {
  // Ready once every worker listens (pool.ready), not when the admin listener does.
  let state: GatewayState = 'starting';
  void pool.ready.then(() => { if (state === 'starting') state = 'serving'; });
  const reload = async (trigger: ReloadTrigger): Promise<ReloadResult> => {
    const result = await pool.reload(trigger);
    if (result.outcome === 'refused') logger.error({ trigger, message: result.message }, 'config reload refused; the old config keeps serving');
    return result;
  };
  let admin: AdminListener | null = null;
  if (config.admin !== undefined) {
    admin = new AdminListener({
      host: config.admin.host ?? ADMIN_DEFAULTS.host,
      port: adminPort ?? config.admin.port ?? ADMIN_DEFAULTS.port,
      logger,
      routes: {
        ...adminPageRoutes(pool),
        ...adminRoutes({
          metrics: async () => ({ contentType: pool.contentType, body: await pool.metrics() }),
          health: async () => (await pool.overview()).health,
          state: () => state,
          reload: () => reload('admin'),
        }),
      },
    });
    await admin.listen();
  }
  const watcher = config.reload?.watch === false ? null : new ConfigWatcher(file, {
    debounceMs: parseDuration(config.reload?.debounce ?? RELOAD_DEBOUNCE, 'reload.debounce'),
    onChange: () => void reload('watch'),
  });
  return {
    adminPort: admin?.port ?? null,
    reload,
    async drain() {
      state = 'draining';
      watcher?.close();
      pool.broadcast('drain');
      // Each worker keeps to the drain timeout itself; this is the backstop.
      const timeoutMs = parseDuration(config.drain?.timeout ?? DRAIN_TIMEOUT, 'drain.timeout') + STOP_GRACE_MS;
      let timer: { unsubscribe(): void } | null = null;
      const late = new Promise<void>((resolve) => { timer = after(systemRuntime, timeoutMs, () => { pool.broadcast('stop'); resolve(); }); });
      await Promise.race([pool.exited, late]);
      (timer as { unsubscribe(): void } | null)?.unsubscribe();
      state = 'closed';
      await admin?.close();
    },
  };
}
