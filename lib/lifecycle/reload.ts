import { ConfigBuildError } from '../config/build-errors.ts';
import { ConfigError } from '../config/load.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { Gateway } from '../gateway.ts';
import type { GatewayEventMap } from '../observe/events.ts';

export type ReloadTrigger = GatewayEventMap['reload']['trigger'];

/** What a reload did: applied, or refused with why (the old config keeps serving). */
export interface ReloadResult {
  outcome: 'applied' | 'refused';
  message?: string;
}

/** A reload built and serving, not yet kept or undone (see `Reloader.stage`). */
export interface StagedReload {
  /** Refused (with why), or applied pending `commit`. */
  result: ReloadResult;
  /** The config built; null when refused. */
  config: GatewayConfig | null;
  /** Keeps it: logged, the `reload` event, what follows the config (level, watch, drain). */
  commit(): ReloadResult;
  /** Serves the config of before again, and counts the reload refused with `message`. */
  revert(message: string): Promise<ReloadResult>;
}

export interface ReloaderOptions {
  gateway: Gateway;
  /** The config serving now. */
  config: GatewayConfig;
  /** Reads and validates the config again, or `text` when given (throws `ConfigError` naming the key path). */
  load: (text?: string) => GatewayConfig;
  /** Runs after a reload applied, with the new config (log level, drain timeout, the watcher). */
  onApplied?: (config: GatewayConfig) => void;
  /**
   * Runs before the gateway rebuilds for `config`, for what the rebuild
   * reads (the log level decides whether routes get an access log); the
   * function it returns undoes it when the reload is refused.
   */
  prepare?: (config: GatewayConfig) => (() => void) | undefined;
}

/** Keys a running gateway cannot take on: a change to them waits for a restart. */
const RESTART_KEYS = ['listen', 'admin', 'workers', 'limits', 'metrics'] as const;

/**
 * Hot reload: reads the config again, validates it, and swaps in its
 * routes (`gateway.reload`). A config that does not validate, or that a
 * stage refuses, is refused: logged with the key path, the `reload` event
 * says so, and the old routes keep serving. Every reload, whatever started
 * it (SIGHUP, the file watcher, `POST /reload`, code), goes through here.
 */
export class Reloader {
  private config: GatewayConfig;

  constructor(private readonly options: ReloaderOptions) {
    this.config = options.config;
  }

  /** The config serving now. */
  get current(): GatewayConfig {
    return this.config;
  }

  /** `text`: the config to apply instead of the file's (workers apply the text their main thread read). */
  async reload(trigger: ReloadTrigger, text?: string): Promise<ReloadResult> {
    return (await this.stage(trigger, text)).commit();
  }

  /**
   * Builds `text` (or the file) and serves it, but leaves the reload open:
   * `commit` makes it the config serving (logged, the `reload` event), and
   * `revert` goes back to the config serving before (another worker of the
   * pool refused the same text: a reload is all workers or none). A config
   * refused here is refused at once (logged, the event) and both do nothing.
   */
  async stage(trigger: ReloadTrigger, text?: string): Promise<StagedReload> {
    const { gateway } = this.options;
    const logger = gateway.logger;
    let next: GatewayConfig;
    let undo: (() => void) | undefined;
    try {
      next = this.options.load(text);
      undo = this.options.prepare?.(next);
      await gateway.reload(next);
    } catch (err) {
      undo?.();
      // A schema's and a build's refusals alike: one problem per key path (a build's message holds them joined by newlines).
      const problems = err instanceof ConfigError || err instanceof ConfigBuildError ? err.problems : null;
      const message = problems !== null ? problems.join('; ') : `invalid config: ${(err as Error).message}`;
      if (problems === null && !(err instanceof TypeError)) {
        logger.error({ trigger, err }, 'config reload failed; the old config keeps serving');
      } else {
        logger.error({ trigger, problems: problems ?? [message] }, 'config reload refused; the old config keeps serving');
      }
      gateway.events.emit('reload', { outcome: 'refused', trigger, message });
      const refused: ReloadResult = { outcome: 'refused', message };
      return { result: refused, config: null, commit: () => refused, revert: () => Promise.resolve(refused) };
    }
    return {
      result: { outcome: 'applied' },
      config: next,
      commit: () => this.applied(trigger, next),
      revert: async (message) => {
        undo?.();
        try {
          await gateway.reload(this.config);
        } catch (err) {
          logger.error({ trigger, err }, 'config reload: going back to the config serving before failed');
        }
        logger.error({ trigger, problems: [message] }, 'config reload refused by another worker; the old config keeps serving');
        gateway.events.emit('reload', { outcome: 'refused', trigger, message });
        return { outcome: 'refused', message };
      },
    };
  }

  private applied(trigger: ReloadTrigger, next: GatewayConfig): ReloadResult {
    const logger = this.options.gateway.logger;
    const stale = RESTART_KEYS.filter((k) => JSON.stringify(next[k]) !== JSON.stringify(this.config[k]));
    this.config = next;
    // Certificates are re-read on every reload, changed or not.
    this.options.gateway.reloadTls();
    this.options.onApplied?.(next);
    const message = stale.length === 0 ? undefined : `${stale.join(', ')} changed: that takes a restart`;
    if (message !== undefined) logger.warn({ trigger, keys: stale }, message);
    logger.info({ trigger, routes: next.routes.length, services: Object.keys(next.services).length }, 'config reloaded');
    this.options.gateway.events.emit('reload', message === undefined ? { outcome: 'applied', trigger } : { outcome: 'applied', trigger, message });
    return message === undefined ? { outcome: 'applied' } : { outcome: 'applied', message };
  }
}
