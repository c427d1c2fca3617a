import { X509Certificate } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { pemFolder } from '../support/certs.ts';
import { CLI, freePort, readyAt, rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { selfSigned } from '../support/short-lived-cert.ts';

/**
 * The listener's certificates' expiry under `--workers 2` (session 12's
 * leftover, F21 item 1): every worker read the files and logged its own warn
 * line, N alike lines per certificate. Each worker reports what it serves
 * (as it listens, and with each reload's answer) and the main thread logs the
 * lines once per change; every worker sets the gauge, and `/metrics` shows
 * one series per entry, the certificate that serves.
 */

const GAUGE = 'rxgate_tls_certificate_expiration_timestamp_seconds';
const WARN = 'TLS certificate expires within 14 days';
const runs = rxgateRuns();
const files = pemFolder();
const crashing = rxgateRuns();
afterAll(() => {
  runs.remove();
  files.remove();
  crashing.remove();
});

const seconds = (pem: string): number => Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);

/**
 * `--workers 2` on a listener with a 3-day certificate in `name`.crt/.key,
 * once every worker listens and the start's line is in. A fixed port: a
 * reload's new listener takes it over (on port 0 the files would serve only
 * after a restart).
 */
async function startTwo(on: RxgateRuns, name: string): Promise<{ gw: RxgateProcess; file: string; adminUrl: string; first: string; warned(): Array<Record<string, unknown>> }> {
  const first = await selfSigned('default.test', 3);
  const cert = files.write(`${name}.crt`, first.cert);
  const key = files.write(`${name}.key`, first.key);
  const port = await freePort();
  const file = on.file(`
listen: { tls: { cert: ${cert}, key: ${key} } }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  s: { upstreams: ["http://127.0.0.1:9"] }
routes:
  - { path: /*, service: s }
`);
  const gw = on.start(['--config', file, '--host', '127.0.0.1', '--port', String(port), '--workers', '2'], { RXGATE_LOG_LEVEL: 'info' });
  // The main thread logs what a worker serves when it says it listens; /ready once both have.
  const [admin] = await Promise.all([gw.logged('rxgate admin listening'), gw.logged('rxgate listening', 2), gw.logged(WARN)]);
  const adminUrl = `http://127.0.0.1:${String(admin['port'])}`;
  await readyAt(adminUrl);
  return { gw, file, adminUrl, first: first.cert, warned: () => gw.lines.filter((l) => l['msg'] === WARN) };
}

describe('certificate expiry with --workers 2', { timeout: 120_000 }, () => {
  it('is logged once at start and per reload that changes what serves, and /metrics has one series per entry with the served notAfter', async () => {
    const { gw, file, adminUrl, first, warned } = await startTwo(runs, 'd');
    try {
      expect(warned()).toMatchObject([{ certificate: 'listen.tls', days: 2 }]);
      const gauge = async (): Promise<string[]> => {
        const res = await request(`${adminUrl}/metrics`);
        return (await res.body.text()).split('\n').filter((l) => l.startsWith(`${GAUGE}{`));
      };
      expect(await gauge()).toEqual([`${GAUGE}{entry="listen.tls",server_name=""} ${seconds(first)}`]);

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

      // A reload that changes nothing that serves logs nothing more (the gauge says it all along), nor does a refused one.
      const again = await request(`${adminUrl}/reload`, { method: 'POST' });
      expect(await again.body.json()).toEqual({ outcome: 'applied' });
      writeFileSync(file, 'routes: 5\n');
      const refused = await request(`${adminUrl}/reload`, { method: 'POST' });
      expect(refused.statusCode).toBe(422);
      await refused.body.dump();
      // The main thread's own line, written after any it would write for the reloads before.
      await gw.logged('config reload refused; the old config keeps serving');
      expect(warned()).toHaveLength(2);
    } finally {
      gw.proc.kill('SIGKILL');
      await gw.exited;
    }
  });
});

/**
 * Review RF's R1: the lines came from the worker in slot 0 only, so once slot
 * 0 left the pool for good (its crash's replacement failed: the files were
 * half rotated when it read them) no reload logged them again. The pipeline
 * module throws in slot 0's first thread once `crash` exists.
 */
const CRASH_MODULE = `import { existsSync, writeFileSync } from 'node:fs';
import { isMainThread, workerData } from 'node:worker_threads';
export const stages = [];
const dir = new URL('.', import.meta.url);
if (!isMainThread && workerData?.slot === 0 && !existsSync(new URL('crashed-once', dir))) {
  const poll = setInterval(() => {
    if (!existsSync(new URL('crash', dir))) return;
    clearInterval(poll);
    writeFileSync(new URL('crashed-once', dir), '1');
    throw new Error('test: a bug in worker 0');
  }, 50);
}
`;

describe('certificate expiry with --workers 2 and worker 0 gone', { timeout: 60_000 }, () => {
  it('is still logged once at a reload that changes the certificate once slot 0 has left the pool for good', async () => {
    writeFileSync(join(crashing.dir, 'crash-slot-0.mjs'), CRASH_MODULE);
    const module = pathToFileURL(join(crashing.dir, 'crash-slot-0.mjs')).href;
    writeFileSync(join(crashing.dir, 'run.mjs'), `import { runCli } from ${JSON.stringify(CLI.cli)};
await runCli(process.argv.slice(2), { module: ${JSON.stringify(module)} });
`);
    const { gw, adminUrl, warned } = await startTwo(crashing, 'r');
    try {
      expect(warned()).toMatchObject([{ days: 2 }]);

      // Mid-rotation: the new certificate without its key yet. Worker 0 crashes; its replacement cannot load the pair and exits.
      const renewed = await selfSigned('default.test', 6);
      files.write('r.crt', renewed.cert);
      writeFileSync(join(crashing.dir, 'crash'), '1');
      expect(await gw.logged('gateway worker crashed: it finishes its requests in flight and exits')).toMatchObject({ worker: 0, replaced: true });
      expect(await gw.logged('gateway worker exited')).toMatchObject({ worker: 0, code: 2 });
      expect(existsSync(join(crashing.dir, 'crashed-once'))).toBe(true);

      // The rotation completes and a reload takes it over in the one worker left: its line, once.
      files.write('r.key', renewed.key);
      const res = await request(`${adminUrl}/reload`, { method: 'POST' });
      expect(await res.body.json()).toEqual({ outcome: 'applied' });
      // Before, no line came: the test ends at its timeout.
      await gw.logged(WARN, 2);
      expect(warned()).toMatchObject([{ days: 2 }, { days: 5 }]);
    } finally {
      gw.proc.kill('SIGKILL');
      await gw.exited;
    }
  });
});
