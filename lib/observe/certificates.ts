import type { CertificateExpiry } from '../server/tls.ts';
import type { Logger } from './log.ts';
import type { GatewayMetrics } from './metrics.ts';

const DAY = 24 * 60 * 60 * 1000;
/** A certificate expiring within this is logged at warn (Let's Encrypt renews at 30 days left, cert-manager alerts at 14-21). */
export const EXPIRY_WARNING = 14 * DAY;

/** Whether this thread logs the lines (every thread sets the gauge). */
let logsLines = true;

/**
 * Leaves the expiry lines to another thread: under `--workers N` every
 * worker reads the same files, and only the first logs them, not N alike
 * lines per certificate (worker-main.ts). The gauge is still set here:
 * `/metrics` merges the workers' by min, one series per entry.
 */
export function leaveExpiryLinesToFirstWorker(): void {
  logsLines = false;
}

/**
 * Shows when the listener's certificates expire: the gauge, set anew (an
 * entry a reload removed loses its series), and a warn line for one that
 * expires within EXPIRY_WARNING, an error line for one that has expired.
 * An expired certificate still serves: clients refuse it, rxgate does not.
 */
export function showCertificateExpiries(expiries: readonly CertificateExpiry[], metrics: GatewayMetrics, logger: Logger, now: number): void {
  metrics.certificateExpiry.reset();
  for (const { entry, serverName, notAfter } of expiries) {
    metrics.certificateExpiry.set({ entry, server_name: serverName }, Math.floor(notAfter / 1000));
    if (!logsLines) continue;
    const left = notAfter - now;
    const fields = { certificate: entry, serverName, notAfter: new Date(notAfter).toISOString() };
    if (left <= 0) logger.error(fields, 'TLS certificate has expired: it still serves, and clients refuse it');
    else if (left <= EXPIRY_WARNING) logger.warn({ ...fields, days: Math.floor(left / DAY) }, 'TLS certificate expires within 14 days');
  }
}
