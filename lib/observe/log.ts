import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** The environment variable that sets the level, over the config's `log.level`. */
export const LOG_LEVEL_ENV = 'RXGATE_LOG_LEVEL';
const DEFAULT_LEVEL = 'info';
/** The levels `log.level` and `RXGATE_LOG_LEVEL` take. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Why `RXGATE_LOG_LEVEL` cannot be used (a line for the CLI to print), or null when it is unset or valid. */
export function logLevelEnvProblem(env: NodeJS.ProcessEnv = process.env): string | null {
  const level = fromEnv(env);
  if (level === undefined || (LOG_LEVELS as readonly string[]).includes(level)) return null;
  return `${LOG_LEVEL_ENV} must be one of ${LOG_LEVELS.join(', ')}; got "${level}"`;
}

/**
 * The level to run at: `RXGATE_LOG_LEVEL` when set (the environment
 * overrides the file: one image, its level set per deployment), else the config's
 * `log.level`, else `info`.
 */
export function logLevel(configured?: string, env: NodeJS.ProcessEnv = process.env): string {
  return fromEnv(env) ?? configured ?? DEFAULT_LEVEL;
}

/**
 * The level a reload from `before` (the config's `log.level` serving now)
 * to `after` moves to: undefined (stay) when `RXGATE_LOG_LEVEL` is set,
 * since it overrides the file; else the new `log.level`, or the default
 * when the new config no longer sets one (what a restart would run at).
 */
export function reloadedLevel(before: string | undefined, after: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (fromEnv(env) !== undefined) return undefined;
  return after ?? (before !== undefined ? DEFAULT_LEVEL : undefined);
}

function fromEnv(env: NodeJS.ProcessEnv): string | undefined {
  const level = env[LOG_LEVEL_ENV];
  return level === undefined || level === '' ? undefined : level;
}

/**
 * rxgate's structured logger (pino: JSON lines, cheap enough for the hot
 * path's error branches and the access log's line per request), at `level`
 * (see `logLevel`).
 *
 * Lines go to stdout through an asynchronous, buffered destination (pino's
 * sonic-boom with `sync: false`): writing never blocks a request, and pino
 * flushes what is buffered when the process exits.
 */
export function createLogger(level = logLevel(), destination?: DestinationStream): Logger {
  return pino({ name: 'rxgate', level, base: { pid: process.pid } }, destination ?? pino.destination({ dest: 1, sync: false }));
}

/** A logger that drops everything, for tests and embedding. */
export const silentLogger: Logger = pino({ level: 'silent' });
