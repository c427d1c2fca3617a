import { gatewaySource } from '../admin/listener.ts';
import { buildGateway, type BuildOptions, type PipelineFactory } from '../config/build.ts';
import { loadConfig, parseConfig } from '../config/load.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { Gateway } from '../gateway.ts';
import { Controls } from './controls.ts';
import { Reloader, type ReloadResult, type ReloadTrigger } from './reload.ts';
import { read as readConfigFile } from './watch.ts';

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
  /** `text`: apply this config instead of reading the file (a worker applies what its main thread read). */
  reload(trigger: ReloadTrigger, text?: string): Promise<ReloadResult>;
  /** Graceful stop (see `Gateway.drain`), within the config's `drain.timeout`; then the admin listener closes. */
  drain(): Promise<boolean>;
  /** Stops at once. */
  close(): Promise<void>;
}

/**
 * Starts a gateway from a config file, as the CLI does: the public listener,
 * the admin listener when the config has `admin`, a watch on the file for
 * hot reload (unless `reload.watch: false`). A reload applies its
 * `log.level` (unless `RXGATE_LOG_LEVEL` is set), `reload` and
 * `drain.timeout` too. Signals are the caller's.
 */
export async function serve(config: GatewayConfig, pipeline: PipelineFactory | null, options: ServeOptions): Promise<Served> {
  const { file, adminPort, env = process.env, admin: runAdmin = true, watch = true, ...build } = options;
  const gateway = buildGateway(config, pipeline, build);
  const logger = gateway.logger;
  let controls: Controls | null = null;
  // Each reload's config with the file's content as read just before it (the baseline of a watch the reload replaces).
  const read = new WeakMap<GatewayConfig, string | null>();
  const reloader: Reloader = new Reloader({
    gateway, config,
    load: (given) => {
      const text = given ?? readConfigFile(file);
      const next = given !== undefined ? parseConfig(given, file, env, build.stages ?? []) : loadConfig(file, env, build.stages ?? []);
      read.set(next, text);
      return next;
    },
    // Before the rebuild, which reads the level (an access log only where `info` is on).
    prepare: (next) => controls?.setLevel(next),
    onApplied: (next) => controls?.apply(next, read.get(next)),
  });
  const port = await gateway.listen();
  try {
    controls = await Controls.start(config, {
      file, logger, watch, env, runtime: build.runtime,
      admin: runAdmin ? { source: gatewaySource(gateway, () => reloader.reload('admin')), page: gateway, port: adminPort } : null,
      onChange: () => void reloader.reload('watch'),
    });
  } catch (err) {
    await gateway.close();
    throw err;
  }
  const own = controls;
  return {
    gateway, reloader, port,
    adminPort: own.adminPort,
    reload: (trigger, text) => reloader.reload(trigger, text),
    async drain() {
      own.stopWatching();
      const timeoutMs = own.drainTimeoutMs;
      logger.info({ timeoutMs }, 'rxgate draining: not ready, no new connections, requests in flight finish');
      const clean = await gateway.drain(timeoutMs, build.runtime);
      if (!clean) logger.warn({ timeoutMs }, 'drain timeout: requests still in flight were cancelled');
      await own.close();
      return clean;
    },
    async close() {
      own.stopWatching();
      await gateway.close();
      await own.close();
    },
  };
}
