import { copyFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCa, pemFolder } from '../support/certs.ts';
import { freePort, rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';

/** The subject CN of the certificate served for SNI `name`, or the error. */
function served(port: number, name: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: name, rejectUnauthorized: false }, () => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.destroy();
    });
    s.on('error', (err) => resolve(`error: ${err.message}`));
  });
}

describe('an SNI name in another case, once the entry\'s files changed on disk (review RC of 9db1874)', { timeout: 60_000 }, () => {
  const files = pemFolder();
  let runs: RxgateRuns;
  let proc: RxgateProcess;
  let port = 0;
  let apiKey = '';
  let otherKey = '';

  beforeAll(async () => {
    const ca = await makeCa('rc ca');
    const def = await ca.issue('default', { names: ['localhost'] });
    const api = await ca.issue('api', { names: ['api.test'] });
    const other = await ca.issue('other', { names: ['other.test'] });
    apiKey = files.write('api.key', api.key);
    otherKey = files.write('other.key', other.key);
    port = await freePort();
    runs = rxgateRuns();
    proc = runs.start(['--config', runs.file(`
listen:
  host: 127.0.0.1
  port: ${port}
  tls:
    cert: ${files.write('def.crt', def.cert)}
    key: ${files.write('def.key', def.key)}
    sni:
      - { serverName: api.test, cert: ${files.write('api.crt', api.cert)}, key: ${apiKey} }
services:
  up: { upstreams: ["http://127.0.0.1:1"] }
routes:
  - { path: /*, service: up }
`)], { RXGATE_LOG_LEVEL: 'info' });
    await proc.logged('rxgate listening');
  });

  afterAll(() => {
    runs?.remove();
    files.remove();
  });

  it('keeps serving (the default certificate) when a rotation has written the new key and not yet the certificate', async () => {
    expect(await served(port, 'api.test')).toBe('api');
    copyFileSync(otherKey, apiKey); // half a rotation: the key no longer matches api.crt
    expect(await served(port, 'api.test')).toBe('api'); // the listener's own context, read at start
    // The handshake that crashed the process (SIGSEGV, review RC) is answered with the default certificate.
    expect(await served(port, 'API.Test')).toBe('default');
    expect([proc.proc.exitCode, proc.proc.signalCode]).toEqual([null, null]);
    expect(await served(port, 'API.Test')).toBe('default');
  });
});
