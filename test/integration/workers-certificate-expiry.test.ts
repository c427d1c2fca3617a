import { X509Certificate } from 'node:crypto';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { pemFolder } from '../support/certs.ts';
import { freePort, rxgateRuns } from '../support/rxgate-process.ts';
import { selfSigned } from '../support/short-lived-cert.ts';

/**
 * The listener's certificates' expiry under `--workers 2` (session 12's
 * leftover, F21 item 1): every worker read the files and logged its own warn
 * line, N alike lines per certificate. The first worker logs them, at start
 * and on each reload; every worker sets the gauge, and `/metrics` shows one
 * series per entry, the certificate that serves.
 */

const GAUGE = 'rxgate_tls_certificate_expiration_timestamp_seconds';
const WARN = 'TLS certificate expires within 14 days';
const runs = rxgateRuns();
const files = pemFolder();
afterAll(() => {
  runs.remove();
  files.remove();
});

const seconds = (pem: string): number => Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);

describe('certificate expiry with --workers 2', { timeout: 120_000 }, () => {
  it('is logged once per start and per reload, and /metrics has one series per entry with the served notAfter', async () => {
    const first = await selfSigned('default.test', 3);
    const cert = files.write('d.crt', first.cert);
    const key = files.write('d.key', first.key);
    // A fixed port: a reload's new listener takes it over (on port 0 the files would serve only after a restart).
    const port = await freePort();
    const file = runs.file(`
listen: { tls: { cert: ${cert}, key: ${key} } }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  s: { upstreams: ["http://127.0.0.1:9"] }
routes:
  - { path: /*, service: s }
`);
    const gw = runs.start(['--config', file, '--host', '127.0.0.1', '--port', String(port), '--workers', '2'], { RXGATE_LOG_LEVEL: 'info' });
    try {
      // A worker logs its certificates before it listens: once both listen, every start line is in.
      const [, admin] = await Promise.all([gw.logged('rxgate listening', 2), gw.logged('rxgate admin listening')]);
      const adminUrl = `http://127.0.0.1:${String(admin['port'])}`;
      const warned = (): Array<Record<string, unknown>> => gw.lines.filter((l) => l['msg'] === WARN);
      expect(warned()).toMatchObject([{ certificate: 'listen.tls', days: 2 }]);
      const gauge = async (): Promise<string[]> => {
        const res = await request(`${adminUrl}/metrics`);
        return (await res.body.text()).split('\n').filter((l) => l.startsWith(`${GAUGE}{`));
      };
      expect(await gauge()).toEqual([`${GAUGE}{entry="listen.tls",server_name=""} ${seconds(first.cert)}`]);

      // Renewed, still within 14 days: the reload's line, once, and the gauge follows.
      const renewed = await selfSigned('default.test', 6);
      files.write('d.crt', renewed.cert);
      files.write('d.key', renewed.key);
      const res = await request(`${adminUrl}/reload`, { method: 'POST' });
      expect(await res.body.json()).toEqual({ outcome: 'applied' });
      // Each worker logs 'config reloaded' after it has read the certificates (reload.ts's applied).
      await gw.logged('config reloaded', 2);
      expect(warned()).toMatchObject([{ days: 2 }, { days: 5 }]);
      expect(await gauge()).toEqual([`${GAUGE}{entry="listen.tls",server_name=""} ${seconds(renewed.cert)}`]);
    } finally {
      gw.proc.kill('SIGKILL');
      await gw.exited;
    }
  });
});
