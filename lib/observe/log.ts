import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * rxgate's structured logger (pino: JSON lines, cheap enough for the hot
 * path's error branches). `RXGATE_LOG_LEVEL` overrides the level.
 */
export function createLogger(level = process.env.RXGATE_LOG_LEVEL ?? 'info'): Logger {
  return pino({ name: 'rxgate', level, base: { pid: process.pid } });
}

/** A logger that drops everything, for tests and embedding. */
export const silentLogger: Logger = pino({ level: 'silent' });
