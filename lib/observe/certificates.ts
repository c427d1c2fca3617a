import { isMainThread, workerData } from 'node:worker_threads';
import type { CertificateExpiry } from '../server/tls.ts';
import type { Logger } from './log.ts';
import type { GatewayMetrics } from './metrics.ts';

const DAY = 24 * 60 * 60 * 1000;
/** A certificate expiring within this is logged at warn (Let's Encrypt renews at 30 days left, cert-manager alerts at 14-21). */
export const EXPIRY_WARNING = 14 * DAY;

/**
 * A worker thread of `--workers N` (lib/server/workers.ts starts them with
 * `pool: true` in their WorkerData) leaves the lines to its main thread,
 * which logs what the workers report they serve once per change
 * (`ServedCertificates`), not N alike lines per certificate.
 */
const linesInMainThread = !isMainThread && (workerData as { pool?: unknown } | null)?.pool === true;

/**
 * Shows when the listener's certificates expire: the gauge, set anew (an
 * entry a reload removed loses its series), and the lines of
 * `logCertificateExpiries` (left to the main thread in a pool worker).
 */
export function showCertificateExpiries(expiries: readonly CertificateExpiry[], metrics: GatewayMetrics, logger: Logger, now: number): void {
  metrics.certificateExpiry.reset();
  for (const { entry, serverName, notAfter } of expiries) {
    metrics.certificateExpiry.set({ entry, server_name: serverName }, Math.floor(notAfter / 1000));
  }
  if (!linesInMainThread) logCertificateExpiries(expiries, logger, now);
}

/**
 * A warn line for a certificate that expires within EXPIRY_WARNING, an
 * error line for one that has expired. An expired certificate still
 * serves: clients refuse it, rxgate does not.
 */
export function logCertificateExpiries(expiries: readonly CertificateExpiry[], logger: Logger, now: number): void {
  for (const { entry, serverName, notAfter } of expiries) {
    const left = notAfter - now;
    const fields = { certificate: entry, serverName, notAfter: new Date(notAfter).toISOString() };
    if (left <= 0) logger.error(fields, 'TLS certificate has expired: it still serves, and clients refuse it');
    else if (left <= EXPIRY_WARNING) logger.warn({ ...fields, days: Math.floor(left / DAY) }, 'TLS certificate expires within 14 days');
  }
}

/**
 * The main thread's view of what its workers serve (each reports its
 * certificates when it listens and with each reload's answer), logged with
 * the soonest expiry per entry across the workers, as /metrics merges the
 * gauge, when the lines it makes change: at start, at a replacement's
 * start, and once per pool reload (`show`), as one process logs at each
 * reload, but not N times alike. The lines are compared with the days left
 * in them, so a reload on a later day logs again as one process would (a
 * certificate that entered its 14 days, or expired, since), and one the
 * same day with unchanged files does not. A worker that crashed or exited
 * is left out.
 */
export class ServedCertificates<W> {
  private readonly byWorker = new Map<W, readonly CertificateExpiry[]>();
  private shown = '';

  constructor(private readonly logger: Logger, private readonly now: () => number) {}

  /** `worker` serves `expiries` now (undefined: it did not say, e.g. no TLS); `show`: log now, else at the reload's end. */
  served(worker: W, expiries: readonly CertificateExpiry[] | undefined, show = true): void {
    if (expiries === undefined) return;
    this.byWorker.set(worker, expiries);
    if (show) this.show();
  }

  /** `worker` serves no more (crashed, exited). */
  gone(worker: W): void {
    this.byWorker.delete(worker);
  }

  /** Logs the lines of what the workers serve, unless they are the lines last logged. */
  show(): void {
    const soonest = new Map<string, CertificateExpiry>();
    for (const expiries of this.byWorker.values()) {
      for (const e of expiries) {
        const key = `${e.entry}\0${e.serverName}`;
        const seen = soonest.get(key);
        if (seen === undefined || e.notAfter < seen.notAfter) soonest.set(key, e);
      }
    }
    const merged = [...soonest.values()].sort((a, b) => a.entry.localeCompare(b.entry, 'en', { numeric: true }));
    const now = this.now();
    // What the lines would say (review RJ, L1): the entries within the warning, with their days left.
    const key = JSON.stringify(merged.filter((e) => e.notAfter - now <= EXPIRY_WARNING).map((e) => [e.entry, e.serverName, e.notAfter, Math.floor((e.notAfter - now) / DAY)]));
    if (key === this.shown) return;
    this.shown = key;
    logCertificateExpiries(merged, this.logger, now);
  }
}
