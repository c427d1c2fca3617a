import { z } from 'zod';
import { listenPort, timerDuration } from '../config/common.ts';

/**
 * The top-level lifecycle keys: the admin listener, graceful drain, hot
 * reload, and whether the public listener serves metrics.
 */

/** The admin listener (`/metrics`, `/health`, `/ready`, `/reload`, the admin page); absent: none. */
export const adminOptions = z.strictObject({
  /** @default '127.0.0.1' */
  host: z.string().min(1).optional(),
  /** 0 picks a free port. @default 9901 */
  port: listenPort.optional(),
});

/** SIGTERM/SIGINT: how long requests in flight may run before they are cancelled. */
export const drainOptions = z.strictObject({
  /** @default '25s' */
  timeout: timerDuration.optional(),
});

/** Hot reload from the config file (SIGHUP and `POST /reload` reload too). */
export const reloadOptions = z.strictObject({
  /** Reload when the config file changes. @default true (when started from a file) */
  watch: z.boolean().optional(),
  /** Changes closer together than this make one reload. @default '500ms' */
  debounce: timerDuration.optional(),
});

export const publicMetricsOptions = z.strictObject({
  /** Also serve `GET /__rxgate/metrics` on the public listener. @default false */
  public: z.boolean().optional(),
});

export const lifecycleKeys = {
  admin: adminOptions.optional(),
  drain: drainOptions.optional(),
  reload: reloadOptions.optional(),
  metrics: publicMetricsOptions.optional(),
};

export const ADMIN_DEFAULTS = { host: '127.0.0.1', port: 9901 } as const;
export const DRAIN_TIMEOUT = '25s';
export const RELOAD_DEBOUNCE = '500ms';
