import { AdminListener, adminRoutes, type AdminSource } from '../admin/listener.ts';
import { adminPageRoutes, type AdminPageData, type PageGateway } from '../admin/page.ts';
import type { GatewayConfig } from '../config/schema.ts';
import { parseDuration } from '../duration.ts';
import { reloadedLevel, silentLogger, type Logger } from '../observe/log.ts';
import type { Runtime } from '../runtime.ts';
import { ADMIN_DEFAULTS, DRAIN_TIMEOUT, RELOAD_DEBOUNCE } from './schema.ts';
import { ConfigWatcher } from './watch.ts';

/** The keys `Controls` follows: what a reload may change of the admin side, the watch and the drain. */
export type ControlKeys = Pick<GatewayConfig, 'admin' | 'reload' | 'drain' | 'log'>;

/** A config's `ControlKeys` alone, as plain data (a worker thread sends them to the main thread). */
export function controlKeys(config: ControlKeys): ControlKeys {
  const level = config.log?.level;
  return {
    ...(config.admin !== undefined ? { admin: config.admin } : {}),
    ...(config.reload !== undefined ? { reload: config.reload } : {}),
    ...(config.drain !== undefined ? { drain: config.drain } : {}),
    ...(level !== undefined ? { log: { level } } : {}),
  };
}

export interface ControlsOptions {
  /** The config file: watched, when the config says so and `watch` is on. */
  file: string;
  logger: Logger;
  /** What the admin listener answers from (one gateway, or a pool of workers); null: no admin listener. */
  admin: { source: AdminSource; page: PageGateway | AdminPageData; port?: number | undefined } | null;
  /** Watch the file when the config says so (a worker thread leaves it to the main thread). */
  watch: boolean;
  /** Called once per settled change of the file's content. */
  onChange: () => void;
  /** Where `RXGATE_LOG_LEVEL` is read. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** @default systemRuntime */
  runtime?: Runtime | undefined;
}

/**
 * What `serve` (one gateway) and `serveWorkers` (the main thread of
 * `--workers N`) share around the config they serve: the admin listener,
 * the watch on the config file and the drain timeout. Each follows the
 * config serving now: `apply` takes on what a reload changed (the watch on
 * or off, its debounce, the drain timeout), so a reloaded key means the
 * same with one thread or many.
 */
export class Controls {
  private watcher: ConfigWatcher | null = null;
  /** The watch's debounce, ms; null: not watching. */
  private debounceMs: number | null = null;
  private stopped = false;

  private constructor(private readonly options: ControlsOptions, private config: ControlKeys, private readonly admin: AdminListener | null) {
    this.watchFor(config);
  }

  /** Starts the admin listener (when the config has `admin`) and the watch (unless `reload.watch: false`). */
  static async start(config: ControlKeys, options: ControlsOptions): Promise<Controls> {
    let admin: AdminListener | null = null;
    if (options.admin !== null && config.admin !== undefined) {
      const { source, page, port } = options.admin;
      admin = new AdminListener({
        host: config.admin.host ?? ADMIN_DEFAULTS.host,
        port: port ?? config.admin.port ?? ADMIN_DEFAULTS.port,
        routes: { ...adminPageRoutes(page), ...adminRoutes(source) },
        logger: options.logger,
      });
      await admin.listen();
    }
    return new Controls(options, config, admin);
  }

  /** The admin listener's port, or null when there is none. */
  get adminPort(): number | null {
    return this.admin?.port ?? null;
  }

  /** `drain.timeout` of the config serving now, ms. */
  get drainTimeoutMs(): number {
    return parseDuration(this.config.drain?.timeout ?? DRAIN_TIMEOUT, 'drain.timeout');
  }

  /**
   * The log level a reload to `next` sets, applied to the logger; returns
   * what undoes it (a refused reload), or undefined when it stays (see
   * `reloadedLevel`: `RXGATE_LOG_LEVEL` overrides the file).
   */
  setLevel(next: ControlKeys): (() => void) | undefined {
    const { logger, env = process.env } = this.options;
    const level = reloadedLevel(this.config.log?.level, next.log?.level, env);
    if (logger === silentLogger || level === undefined || level === logger.level) return undefined;
    const before = logger.level;
    logger.level = level;
    return () => { logger.level = before; };
  }

  /**
   * Takes on a reloaded config: the watch (on or off, its debounce) and the
   * drain timeout. `loaded`: the file's content as the reload read it (read
   * before the config was), the baseline of a watch that starts or is
   * replaced here; a change made since is reloaded after the debounce.
   */
  apply(next: ControlKeys, loaded?: string | null): void {
    this.config = next;
    this.watchFor(next, loaded);
  }

  /** Ends the watch for good (a drain begins: no reload from here on). */
  stopWatching(): void {
    this.stopped = true;
    this.watcher?.close();
    this.watcher = null;
  }

  /** Ends the watch and closes the admin listener. */
  async close(): Promise<void> {
    this.stopWatching();
    await this.admin?.close();
  }

  private watchFor(config: ControlKeys, loaded?: string | null): void {
    const { file, watch, onChange, runtime } = this.options;
    const debounceMs = this.stopped || !watch || config.reload?.watch === false ? null
      : parseDuration(config.reload?.debounce ?? RELOAD_DEBOUNCE, 'reload.debounce');
    if (debounceMs === this.debounceMs) return;
    // The new watch takes over from the old one: a change the old one was still waiting on is not lost.
    const applied = this.watcher?.close();
    this.watcher = null;
    this.debounceMs = debounceMs;
    const baseline = loaded !== undefined ? loaded : applied;
    if (debounceMs !== null) this.watcher = new ConfigWatcher(file, { debounceMs, onChange, ...(runtime !== undefined ? { runtime } : {}) }, baseline);
  }
}
