import { constants } from 'node:os';
import type { Logger } from '../observe/log.ts';
import { registeredTracerProvider } from '../observe/tracing.ts';

/** How long an exit waits for a tracing SDK to export what it holds (the CLI's, and each worker's: worker-main.ts). */
export const FLUSH_TIMEOUT = 2 * 1000; // 2s

export interface SignalActions {
  /** The graceful stop (SIGTERM, SIGINT); the process exits 0 when it resolves. */
  drain: () => Promise<unknown>;
  /** SIGHUP. */
  reload: () => Promise<unknown>;
  logger: Logger;
  /**
   * A second SIGTERM or SIGINT: what stops at once before the exit (the
   * gateway closed, cutting what is in flight; under `--workers` each worker
   * told to stop, and each flushes its own tracer). Waited for, with the
   * tracer's flush, at most 2 s; a third signal exits at once.
   * @default nothing
   */
  stopNow?: () => Promise<unknown>;
}

/**
 * The process's signals: SIGTERM or SIGINT drains, flushes a tracing SDK
 * (`flushTraces`) and exits 0; a second one stops at once (`stopNow`), still
 * flushes (both within 2 s: the spans of what it cut off) and exits 128 +
 * its number, as a shell reports it; a third exits there and then. SIGHUP
 * reloads.
 */
export function handleSignals({ drain, reload, logger, stopNow }: SignalActions): void {
  let draining = false;
  let stopping = false;
  const stop = (signal: 'SIGTERM' | 'SIGINT'): void => {
    const code = 128 + constants.signals[signal];
    if (stopping) process.exit(code);
    if (draining) {
      stopping = true;
      logger.warn({ signal }, 'rxgate: second signal, exiting now');
      // The stop first: what it cuts off ends its spans, which the flush then exports; both within FLUSH_TIMEOUT.
      const stopThenFlush = (): Promise<void> => settledWithin(() => stopNow?.(), FLUSH_TIMEOUT).then(() => flushTraces(FLUSH_TIMEOUT));
      void settledWithin(stopThenFlush, FLUSH_TIMEOUT).then(() => process.exit(code));
      return;
    }
    draining = true;
    logger.info({ signal }, 'rxgate stopping');
    drain().then(() => 0, (err: unknown) => {
      logger.error({ err }, 'rxgate: drain failed');
      return 1;
    }).then((code) => flushTraces(FLUSH_TIMEOUT).then(() => {
      // A second signal's stop ends the drain too: its own exit, with its code, is on the way.
      if (!stopping) process.exit(code);
    }));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => void reload());
}

/**
 * Exports what a registered tracing SDK still holds (a BatchSpanProcessor
 * sends every 5 s), so the spans of the requests the drain let finish reach
 * the collector before the process exits; at most `timeoutMs`, and nothing
 * without an SDK or with a provider that has no `forceFlush`.
 */
export async function flushTraces(timeoutMs: number): Promise<void> {
  const provider = registeredTracerProvider() as { forceFlush?: () => Promise<unknown> } | null;
  if (typeof provider?.forceFlush !== 'function') return;
  await settledWithin(() => provider.forceFlush!(), timeoutMs);
}

/**
 * Runs `work` and settles when it does or after `timeoutMs`, whichever comes
 * first, never rejecting: work that throws or returns no Promise must not
 * turn a stop into an unhandled rejection (review RD 7).
 */
async function settledWithin(work: () => unknown, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); });
  const done = Promise.resolve().then(work).then(() => undefined, () => undefined);
  await Promise.race([done, late]);
  clearTimeout(timer);
}

/**
 * A SIGHUP while the gateway starts (Node's default for it ends the
 * process): held until `handleSignals` can act on it. The returned function
 * stops holding and says whether one came, so the caller reloads once —
 * the file may have changed after it was read. A systemd `ExecReload` or a
 * config tool's `kill -HUP` racing a restart then reloads instead of killing.
 */
export function holdReloads(): () => boolean {
  let held = false;
  const hold = (): void => {
    held = true;
  };
  process.on('SIGHUP', hold);
  return () => {
    process.off('SIGHUP', hold);
    return held;
  };
}
