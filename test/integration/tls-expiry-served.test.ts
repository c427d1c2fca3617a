import { X509Certificate } from 'node:crypto';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { certificateExpiries, EdgeTls } from '../../lib/server/tls.ts';
import { makeCa, pemFolder, type Issued } from '../support/certs.ts';
import { selfSigned } from '../support/short-lived-cert.ts';

/**
 * The expiry gauge's source (session 12's leftover, F21 item 2): a
 * listener's certificate expiries are those of the bytes it loaded, kept
 * with them, so showing them (at start, on each reload) reads no file, and a
 * file rewritten since shows only once the listener takes it over. Before,
 * every reload read each certificate file a second time after readTls, and
 * a rotation between the two reads showed a certificate that was not the
 * one serving.
 */

let main: Issued;
let a: Issued;
let files: ReturnType<typeof pemFolder>;

beforeAll(async () => {
  const ca = await makeCa('served CA');
  main = await ca.issue('default.test', { names: ['default.test'] });
  a = await ca.issue('a.test', { names: ['a.test'] });
});
afterEach(() => files.remove());

const notAfter = (pem: string): number => Date.parse(new X509Certificate(pem).validTo);

describe('a listener\'s certificate expiries', () => {
  it('are those of the files it loaded, and showing them reads no file (a reload the listener takes over: tls-certificate-expiry)', async () => {
    files = pemFolder();
    const options = {
      cert: files.write('d.crt', main.cert), key: files.write('d.key', main.key),
      sni: [{ serverName: 'a.test', cert: files.write('a.crt', a.cert), key: files.write('a.key', a.key) }],
    };
    const tls = new EdgeTls(options);
    const loaded = [
      { entry: 'listen.tls', serverName: '', notAfter: notAfter(main.cert) },
      { entry: 'listen.tls.sni[0]', serverName: 'a.test', notAfter: notAfter(a.cert) },
    ];
    expect(tls.expiries).toEqual(loaded);
    // A rotation writes the default pair: the listener still serves what it loaded, and a reread alone changes nothing served.
    const renewed = await selfSigned('default.test', 3);
    files.write('d.crt', renewed.cert);
    files.write('d.key', renewed.key);
    expect(tls.expiries).toEqual(loaded);
    tls.reread();
    expect(tls.pending).toEqual(['listen.tls']);
    expect(tls.expiries).toEqual(loaded);
    // No file is read to show them: with the files gone, the same.
    files.remove();
    expect(tls.expiries).toEqual(loaded);
  });

  it('of options alone are read from the files (certificateExpiries)', () => {
    files = pemFolder();
    const options = { cert: files.write('d.crt', main.cert), key: files.write('d.key', main.key) };
    expect(certificateExpiries(options)).toEqual([{ entry: 'listen.tls', serverName: '', notAfter: notAfter(main.cert) }]);
  });
});
