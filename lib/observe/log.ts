import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * rxgate's structured logger (pino: JSON lines, cheap enough for the hot
 * path's error branches and the access log's line per request).
 * `RXGATE_LOG_LEVEL` overrides the level.
 *
 * Lines go to stdout through an asynchronous, buffered destination (pino's
 * sonic-boom with `sync: false`): writing never blocks a request, and pino
 * flushes what is buffered when the process exits.
 */
export function createLogger(level = process.env.RXGATE_LOG_LEVEL ?? 'info', destination?: DestinationStream): Logger {
  return pino({ name: 'rxgate', level, base: { pid: process.pid } }, destination ?? pino.destination({ dest: 1, sync: false }));
}

/** A logger that drops everything, for tests and embedding. */
export const silentLogger: Logger = pino({ level: 'silent' });
