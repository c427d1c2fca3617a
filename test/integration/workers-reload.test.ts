import { writeFileSync } from 'node:fs';
import { request } from 'undici';
import { afterAll, describe, it, type TestContext } from 'vitest';
import { get } from '../support/answer.ts';
import { holdingUpstream } from '../support/holding-upstream.ts';
import { rxgateRuns, type RxgateProcess } from '../support/rxgate-process.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * `--workers N`: the main thread holds the file watch and the drain's
 * backstop, and takes what a reload changes of them from the config the
 * workers applied, as a single process does (lib/lifecycle/controls.ts).
 */

const runs = rxgateRuns();
afterAll(() => runs.remove());

/** Past the backstop a drain of `drain.timeout: 300ms` had in the main thread (300 ms + 5 s for the workers to stop). */
const PAST_OLD_BACKSTOP_MS = 7000;

async function upstream(t: TestContext, handler: Parameters<typeof startUpstream>[0]): Promise<TestUpstream> {
  const up = await startUpstream(handler);
  t.onTestFinished(() => up.close());
  return up;
}

/** Starts rxgate with two workers on `file`; resolves once both workers and the admin listener listen. */
async function workers(t: TestContext, file: string): Promise<{ gw: RxgateProcess; url: string; admin: string }> {
  const gw = runs.start(['--config', file, '--host', '127.0.0.1', '--port', '0', '--workers', '2'], { RXGATE_LOG_LEVEL: 'info' });
  const [listening, admin] = await Promise.all([gw.logged('rxgate listening', 2), gw.logged('rxgate admin listening')]);
  t.onTestFinished(async () => {
    if (gw.proc.exitCode === null) gw.proc.kill('SIGKILL');
    await gw.exited;
  });
  return { gw, url: `http://127.0.0.1:${String(listening['port'])}`, admin: `http://127.0.0.1:${String(admin['port'])}` };
}

const config = (url: string, keys: string, routes = '  - { path: /a, service: up, retry: false }'): string => `
admin: { host: 127.0.0.1, port: 0 }
${keys}
services:
  up: { upstreams: ["${url}"], timeout: 60s }
routes:
${routes}
`;

async function reload(admin: string): Promise<unknown> {
  const res = await request(`${admin}/reload`, { method: 'POST' });
  return res.body.json();
}

// Each test starts an rxgate process with two worker threads: generous timeouts, no duration asserted.
// The three run at once (each has its own process, upstream and file; most of their time is waiting).
describe('with --workers 2, a reload changes the main thread\'s part too', { timeout: 120_000, concurrent: true }, () => {
  it('a reload that raises drain.timeout lets a request slower than the old timeout finish after SIGTERM', async (t) => {
    const { expect } = t;
    const up = await holdingUpstream();
    t.onTestFinished(() => up.close());
    const file = runs.file(config(up.url, 'drain: { timeout: 300ms }\nreload: { watch: false }'));
    const { gw, url, admin } = await workers(t, file);
    writeFileSync(file, config(up.url, 'drain: { timeout: 20s }\nreload: { watch: false }'));
    expect(await reload(admin)).toEqual({ outcome: 'applied' });

    const slow = request(`${url}/a`).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }), (err: unknown) => err);
    await up.arrived;
    gw.proc.kill('SIGTERM');
    await gw.logged('rxgate draining: not ready, no new connections, requests in flight finish', 2);
    // Longer than the startup timeout (and its backstop), shorter than the reloaded one.
    await new Promise((r) => setTimeout(r, PAST_OLD_BACKSTOP_MS));
    up.release();
    expect(await slow, `log: ${gw.lines.map((l) => String(l['msg'])).join(' | ')}`).toEqual({ status: 200, body: 'slow, but complete' });
    expect(await gw.exited).toBe(0);
  });

  it('a reload that turns reload.watch off: a later change of the file is not applied', async (t) => {
    const { expect } = t;
    const up = await upstream(t, (_req, res) => res.end('ok'));
    const file = runs.file(config(up.url, 'reload: { watch: true, debounce: 50ms }'));
    const { gw, url, admin } = await workers(t, file);
    // The watch itself applies the change that turns it off (in both workers).
    writeFileSync(file, config(up.url, 'reload: { watch: false }'));
    await gw.logged('config reloaded', 2);

    const withB = config(up.url, 'reload: { watch: false }', '  - { path: /a, service: up }\n  - { path: /b, service: up }');
    writeFileSync(file, withB);
    // Many debounces later: no reload came of it.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await get(`${url}/b`)).status).toBe(404);
    expect(gw.lines.filter((l) => l['msg'] === 'config reloaded')).toHaveLength(2);
    // The file was good: asked for, it applies.
    expect(await reload(admin)).toEqual({ outcome: 'applied' });
    expect((await get(`${url}/b`)).status).toBe(200);
  });

  it('a reload that turns reload.watch on: a later change of the file is applied', async (t) => {
    const { expect } = t;
    const up = await upstream(t, (_req, res) => res.end('ok'));
    const file = runs.file(config(up.url, 'reload: { watch: false }'));
    const { gw, url, admin } = await workers(t, file);
    writeFileSync(file, config(up.url, 'reload: { watch: true, debounce: 50ms }'));
    expect(await reload(admin)).toEqual({ outcome: 'applied' });

    writeFileSync(file, config(up.url, 'reload: { watch: true, debounce: 50ms }', '  - { path: /a, service: up }\n  - { path: /b, service: up }'));
    await gw.logged('config reloaded', 4);
    expect((await get(`${url}/b`)).status).toBe(200);
  });
});
