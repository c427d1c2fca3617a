import { X509Certificate } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { EXPIRY_WARNING, showCertificateExpiries } from '../../lib/observe/certificates.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { certificateExpiries } from '../../lib/server/tls.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { freePort } from '../support/rxgate-process.ts';
import { makeCa, pemFolder, type Issued } from '../support/certs.ts';
import { startGatewayFromYaml } from '../support/servers.ts';
import { selfSigned } from '../support/short-lived-cert.ts';

/**
 * The listener's certificates' expiry (A13's F10): a gauge of each entry's
 * notAfter, set at start and on each reload, and a warn line within 14 days
 * of it, an error line past it. The clock is injected where the lines are
 * decided; the certificates are real (30 days, made in the test).
 */

const GAUGE = 'rxgate_tls_certificate_expiration_timestamp_seconds';
let main: Issued;
let a: Issued;

beforeAll(async () => {
  const ca = await makeCa('expiry CA');
  main = await ca.issue('default.test', { names: ['default.test'] });
  a = await ca.issue('a.test', { names: ['a.test'] });
});

const notAfter = (pem: string): number => Date.parse(new X509Certificate(pem).validTo);

/** The log lines (parsed) of showCertificateExpiries at `now`. */
function shown(expiries: ReturnType<typeof certificateExpiries>, now: number): Array<{ level: number; msg: string; certificate: string }> {
  const lines: string[] = [];
  showCertificateExpiries(expiries, new GatewayMetrics({ defaultMetrics: false }), pino({ level: 'info' }, { write: (l: string) => { lines.push(l); } }), now);
  return lines.map((l) => JSON.parse(l) as { level: number; msg: string; certificate: string });
}

describe('listener certificate expiry', () => {
  let files: ReturnType<typeof pemFolder>;
  let gateway: (Gateway & { url: string }) | undefined;
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
    files.remove();
  });

  function write(): { cert: string; key: string; aCert: string; aKey: string } {
    files = pemFolder();
    return { cert: files.write('d.crt', main.cert), key: files.write('d.key', main.key), aCert: files.write('a.crt', a.cert), aKey: files.write('a.key', a.key) };
  }

  it('reads each entry\'s notAfter from its PEM file, the default certificate and every sni one', () => {
    const f = write();
    expect(certificateExpiries({ cert: f.cert, key: f.key, sni: [{ serverName: 'a.test', cert: f.aCert, key: f.aKey }] })).toEqual([
      { entry: 'listen.tls', serverName: '', notAfter: notAfter(main.cert) },
      { entry: 'listen.tls.sni[0]', serverName: 'a.test', notAfter: notAfter(a.cert) },
    ]);
  });

  it('logs nothing with more than 14 days left, warn within 14 days, error once expired', () => {
    const f = write();
    const expiries = certificateExpiries({ cert: f.cert, key: f.key });
    const end = notAfter(main.cert);
    expect(shown(expiries, end - EXPIRY_WARNING - 1000)).toEqual([]);
    expect(shown(expiries, end - EXPIRY_WARNING + 1000)).toMatchObject([{ level: 40, msg: 'TLS certificate expires within 14 days', certificate: 'listen.tls' }]);
    expect(shown(expiries, end + 1000)).toMatchObject([{ level: 50, msg: 'TLS certificate has expired: it still serves, and clients refuse it', certificate: 'listen.tls' }]);
  });

  /** A gateway on `port` with the default certificate and one sni entry, from this test's files. */
  const started = (port: number): ReturnType<typeof startGatewayFromYaml> => {
    const f = write();
    return startGatewayFromYaml(`
listen:
  tls:
    cert: ${f.cert}
    key: ${f.key}
    sni:
      - { serverName: a.test, cert: ${f.aCert}, key: ${f.aKey} }
services:
  s: { upstreams: ["http://127.0.0.1:9"] }
routes:
  - { path: /*, service: s }
`, defaultPipeline, process.env, { port });
  };

  it('sets the gauge at start, and on a reload to the files as they are then', async () => {
    gateway = await started(await freePort()); // a port a reload can take over (port 0 cannot: tlsPending)
    const text = await gateway.metrics.registry.metrics();
    expect(text).toContain(`${GAUGE}{entry="listen.tls",server_name=""} ${Math.floor(notAfter(main.cert) / 1000)}\n`);
    expect(text).toContain(`${GAUGE}{entry="listen.tls.sni[0]",server_name="a.test"} ${Math.floor(notAfter(a.cert) / 1000)}\n`);
    // The default certificate's file now holds one that expired yesterday: its series follows on reload, with an error line.
    const expired = await selfSigned('default.test', -1);
    files.write('d.crt', expired.cert);
    files.write('d.key', expired.key);
    gateway.reloadTls();
    expect(await gateway.metrics.registry.metrics()).toContain(`${GAUGE}{entry="listen.tls",server_name=""} ${Math.floor(notAfter(expired.cert) / 1000)}\n`);
  });

  it('keeps showing the certificate the listener serves when a reload cannot take the port over (review RE, E3)', async () => {
    gateway = await started(0);
    const expired = await selfSigned('default.test', -1);
    files.write('d.crt', expired.cert);
    files.write('d.key', expired.key);
    gateway.reloadTls(); // port 0: the new files serve only after a restart (tlsPending)
    expect(await gateway.metrics.registry.metrics()).toContain(`${GAUGE}{entry="listen.tls",server_name=""} ${Math.floor(notAfter(main.cert) / 1000)}\n`);
  });
});
