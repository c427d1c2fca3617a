import { AdminListener, adminRoutes, gatewaySource } from '../admin/listener.ts';
import { adminPageRoutes } from '../admin/page.ts';
import type { AdminHandler } from '../admin/types.ts';
import { buildGateway, type BuildOptions, type PipelineFactory } from '../config/build.ts';
import { loadConfig } from '../config/load.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { parseDuration } from '../duration.ts';
import type { Gateway } from '../gateway.ts';
import { reloadedLevel, silentLogger } from '../observe/log.ts';
import { ADMIN_DEFAULTS, DRAIN_TIMEOUT, RELOAD_DEBOUNCE } from './schema.ts';
import { Reloader, type ReloadResult, type ReloadTrigger } from './reload.ts';
import { ConfigWatcher } from './watch.ts';

export interface ServeOptions extends BuildOptions {
  /** The config file the config came from: reloads read it again. */
  file: string;
  /** Overrides `admin.port` (0: any free port); the admin listener runs only if the config has `admin`. */
  adminPort?: number;
  /** For `${VAR}` in reloaded configs, and `RXGATE_LOG_LEVEL`. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Run the admin listener when the config has `admin` (a worker thread leaves it to the main thread). @default true */
  admin?: boolean;
  /** Watch the file when the config says so (a worker thread is told to reload instead). @default true */
  watch?: boolean;
}

/** A gateway started from a config file, with its admin listener, reloads and drain. */
export interface Served {
  readonly gateway: Gateway;
  readonly reloader: Reloader;
  /** The public listener's port. */
  readonly port: number;
  /** The admin listener's port, or null when the config has no `admin`. */
  readonly adminPort: number | null;
  reload(trigger: ReloadTrigger): Promise<ReloadResult>;
  /** Graceful stop (see `Gateway.drain`), within the config's `drain.timeout`; then the admin listener closes. */
  drain(): Promise<boolean>;
  /** Stops at once. */
  close(): Promise<void>;
}

/**
 * Starts a gateway from a config file, as the CLI does: the public listener,
 * the admin listener when the config has `admin`, a watch on the file for
 * hot reload (unless `reload.watch: false`). Signals are the caller's.
 */
export async function serve(config: GatewayConfig, pipeline: PipelineFactory | null, options: ServeOptions): Promise<Served> {
  const { file, adminPort, env = process.env, admin: runAdmin = true, watch: runWatch = true, ...build } = options;
  const gateway = buildGateway(config, pipeline, build);
  const logger = gateway.logger;
  let watcher: ConfigWatcher | null = null;
  const watchFor = (c: GatewayConfig): void => {
    watcher?.close();
    watcher = null;
    if (!runWatch || c.reload?.watch === false) return;
    const debounceMs = parseDuration(c.reload?.debounce ?? RELOAD_DEBOUNCE, 'reload.debounce');
    watcher = new ConfigWatcher(file, { debounceMs, onChange: () => void reloader.reload('watch'), ...(build.runtime !== undefined ? { runtime: build.runtime } : {}) });
  };
  const reloader: Reloader = new Reloader({
    gateway, config,
    load: () => loadConfig(file, env, build.stages ?? []),
    // Before the rebuild, which reads the level (an access log only where `info` is on).
    prepare(next) {
      // RXGATE_LOG_LEVEL overrides the file: the level stays (see reloadedLevel).
      const level = reloadedLevel(config.log?.level, next.log?.level, env);
      if (logger === silentLogger || level === undefined || level === logger.level) return undefined;
      const before = logger.level;
      logger.level = level;
      return () => { logger.level = before; };
    },
    onApplied(next) {
      if (JSON.stringify(next.reload) !== JSON.stringify(config.reload)) watchFor(next);
      config = next;
    },
  });
  const port = await gateway.listen();
  let admin: AdminListener | null = null;
  try {
    if (runAdmin && config.admin !== undefined) {
      const routes: Record<string, AdminHandler> = {
        ...adminPageRoutes(gateway),
        ...adminRoutes(gatewaySource(gateway, () => reloader.reload('admin'))),
      };
      admin = new AdminListener({ host: config.admin.host ?? ADMIN_DEFAULTS.host, port: adminPort ?? config.admin.port ?? ADMIN_DEFAULTS.port, routes, logger });
      await admin.listen();
    }
    watchFor(config);
  } catch (err) {
    await gateway.close();
    throw err;
  }
  const stopWatching = (): void => {
    watcher?.close();
    watcher = null;
  };
  return {
    gateway, reloader, port,
    adminPort: admin?.port ?? null,
    reload: (trigger) => reloader.reload(trigger),
    async drain() {
      stopWatching();
      const timeoutMs = parseDuration(reloader.current.drain?.timeout ?? DRAIN_TIMEOUT, 'drain.timeout');
      logger.info({ timeoutMs }, 'rxgate draining: not ready, no new connections, requests in flight finish');
      const clean = await gateway.drain(timeoutMs, build.runtime);
      if (!clean) logger.warn({ timeoutMs }, 'drain timeout: requests still in flight were cancelled');
      await admin?.close();
      return clean;
    },
    async close() {
      stopWatching();
      await gateway.close();
      await admin?.close();
    },
  };
}
