import { describe, expect, it } from 'vitest';
import { logCertificateExpiries, ServedCertificates } from '../../lib/observe/certificates.ts';
import type { Logger } from '../../lib/observe/log.ts';
import type { CertificateExpiry } from '../../lib/server/tls.ts';

/**
 * Review RJ, L1: under `--workers` the expiry lines were logged once per
 * change of what the workers serve, keyed on the certificates alone, so a
 * reload with unchanged files after the 14-day mark (or after expiry)
 * logged nothing where one process logs its line. The pool now compares the
 * lines themselves (days left included) and shows them once per reload,
 * after every worker's answer.
 */

const DAY = 86_400_000;
const T0 = Date.UTC(2026, 0, 1);
const cert = (days: number): CertificateExpiry[] => [{ entry: 'listen.tls', serverName: '', notAfter: T0 + days * DAY }];

function recorder(): { lines: string[]; logger: Logger } {
  const lines: string[] = [];
  const logger = {
    warn: (f: { days: number }, m: string) => lines.push(`warn ${m} days=${f.days}`),
    error: (_f: unknown, m: string) => lines.push(`error ${m}`),
  } as unknown as Logger;
  return { lines, logger };
}

/** A pool reload as workers.ts runs it: each worker's answer recorded, the lines shown once at the end. */
function reload(pool: ServedCertificates<string>, answers: Record<string, CertificateExpiry[]>): void {
  for (const [worker, certs] of Object.entries(answers)) pool.served(worker, certs, false);
  pool.show();
}

describe('the pool\'s certificate-expiry lines at a reload', () => {
  it('are logged at a reload on a later day with unchanged files, as one process logs them', () => {
    let now = T0;
    const { lines, logger } = recorder();
    const pool = new ServedCertificates<string>(logger, () => now);
    pool.served('w0', cert(20));
    pool.served('w1', cert(20));
    expect(lines).toEqual([]);

    now = T0 + 10 * DAY;
    const one = recorder();
    logCertificateExpiries(cert(20), one.logger, now);
    reload(pool, { w0: cert(20), w1: cert(20) });
    expect(lines).toEqual(one.lines);
    expect(lines).toEqual(['warn TLS certificate expires within 14 days days=10']);

    // The same day again: the same line, not logged twice.
    reload(pool, { w0: cert(20), w1: cert(20) });
    expect(lines).toHaveLength(1);

    // Past expiry: the error line, once.
    now = T0 + 21 * DAY;
    reload(pool, { w0: cert(20), w1: cert(20) });
    reload(pool, { w0: cert(20), w1: cert(20) });
    expect(lines.slice(1)).toEqual(['error TLS certificate has expired: it still serves, and clients refuse it']);
  });

  it('log nothing for the outgoing certificate at a renewal (the soonest is read once every worker has answered)', () => {
    let now = T0;
    const { lines, logger } = recorder();
    const pool = new ServedCertificates<string>(logger, () => now);
    pool.served('w0', cert(20));
    pool.served('w1', cert(20));
    now = T0 + 8 * DAY;
    reload(pool, { w0: cert(110), w1: cert(110) });
    expect(lines).toEqual([]);
  });
});
