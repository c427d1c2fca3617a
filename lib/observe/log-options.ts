import { z } from 'zod';
import { headerName as writtenHeaderName } from '../config/common.ts';
import { LOG_LEVELS } from './log.ts';

/**
 * The `log` keys: top-level (level, the access log and what it may show)
 * and per route (the access log on or off there).
 */

const headerName = writtenHeaderName.transform((h) => h.toLowerCase());

export const logOptions = z.strictObject({
  /** @default 'info'; `RXGATE_LOG_LEVEL`, when set, overrides it, at start and on reload */
  level: z.enum(LOG_LEVELS).optional(),
  /** One JSON line per request (info level). @default true */
  access: z.boolean().optional(),
  /** Request headers to add to each access line (under `headers`). @default [] */
  headers: z.array(headerName).optional(),
  /**
   * Header and query-parameter names whose values are written as
   * `[redacted]`; `authorization`, `proxy-authorization`, `cookie` and
   * `set-cookie` always are. @default []
   */
  redact: z.array(z.string().min(1)).optional(),
  /** Write the query string (`query`), its redacted parameters masked. @default false */
  query: z.boolean().optional(),
});

export const routeLogOptions = z.strictObject({
  /** This route's requests in the access log, whatever the top-level `log.access`. @default the top-level value */
  access: z.boolean().optional(),
});

export type LogOptions = z.output<typeof logOptions>;
export type RouteLogOptions = z.output<typeof routeLogOptions>;

/** What the access log never shows, whatever the config says. */
export const ALWAYS_REDACTED: readonly string[] = ['authorization', 'proxy-authorization', 'cookie', 'set-cookie'];
