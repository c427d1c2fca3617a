import { writeFileSync } from 'node:fs';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort, readyAt, rxgateRuns, type RxgateProcess } from '../support/rxgate-process.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * The log level: `RXGATE_LOG_LEVEL` overrides the config's `log.level`, at
 * start and on every reload; without it the config's level applies, and a
 * reload that drops the key goes back to `info`, as a restart would.
 */

const runs = rxgateRuns();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
afterAll(() => runs.remove());

const INFO = 30;

async function answering(): Promise<TestUpstream> {
  const up = await startUpstream((_req, res) => res.end('ok'));
  cleanups.push(() => up.close());
  return up;
}

const config = (url: string, adminPort: number, log: string): string => `
${log}
admin: { host: 127.0.0.1, port: ${adminPort} }
reload: { watch: false }
services:
  up: { upstreams: ["${url}"] }
routes:
  - { path: /a, service: up }
`;

/** Starts rxgate on `yaml` (its admin listener on `adminPort`); resolves once /ready answers 200. */
async function start(yaml: string, adminPort: number, env: Record<string, string | undefined>): Promise<{ gw: RxgateProcess; file: string }> {
  const file = runs.file(yaml);
  const gw = runs.start(['--config', file, '--host', '127.0.0.1', '--port', '0'], env);
  cleanups.push(async () => {
    if (gw.proc.exitCode === null) gw.proc.kill('SIGKILL');
    await gw.exited;
  });
  await readyAt(`http://127.0.0.1:${adminPort}`);
  return { gw, file };
}

async function reload(adminPort: number): Promise<unknown> {
  return (await request(`http://127.0.0.1:${adminPort}/reload`, { method: 'POST' })).body.json();
}

// Each test starts an rxgate process: generous timeouts, no duration asserted.
describe('log level', { timeout: 120_000 }, () => {
  it('RXGATE_LOG_LEVEL overrides log.level at start and on reload', async () => {
    const up = await answering();
    const adminPort = await freePort();
    const { gw, file } = await start(config(up.url, adminPort, 'log: { level: info }'), adminPort, { RXGATE_LOG_LEVEL: 'warn' });
    writeFileSync(file, config(up.url, adminPort, 'log: { level: debug }'));
    expect(await reload(adminPort)).toEqual({ outcome: 'applied' });
    gw.proc.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    // Not one line below warn: not the start's, not the reload's, not the drain's.
    expect(gw.lines.filter((l) => (l['level'] as number) < 40).map((l) => l['msg'])).toEqual([]);
  });

  it('without RXGATE_LOG_LEVEL, log.level applies at start, and a reload that drops it goes back to info', async () => {
    const up = await answering();
    const adminPort = await freePort();
    const { gw, file } = await start(config(up.url, adminPort, 'log: { level: warn }'), adminPort, { RXGATE_LOG_LEVEL: undefined });
    writeFileSync(file, config(up.url, adminPort, ''));
    expect(await reload(adminPort)).toEqual({ outcome: 'applied' });
    gw.proc.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    // The start's info lines are not there, the reload's and the drain's are. (Not by
    // their order: pino's exit flush can write its buffer ahead of a write in flight.)
    const info = gw.lines.filter((l) => (l['level'] as number) <= INFO).map((l) => l['msg']);
    expect(info).not.toContain('rxgate listening');
    expect(info).not.toContain('rxgate admin listening');
    expect(info).toContain('config reloaded');
    expect(info).toContain('rxgate stopping');
  });
});
