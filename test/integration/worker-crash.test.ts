import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Agent, Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/global-setup.ts';
import { CLI, CLI_FROM, rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * `--workers 2` and a worker whose thread throws where nothing catches it
 * (test/support/crash-module.ts). Node ends such a thread with its uWS
 * sockets open and aborts the whole process for that: every connection of
 * every worker was lost, and nothing restarted it. As nginx's master
 * respawns a worker that died, the main thread starts another worker and
 * the crashed one finishes its requests in flight.
 */

const ROOT = join(import.meta.dirname, '../..');
let runs: RxgateRuns;
let upstream: Server;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    // The crashing request is still in flight when its thread crashes.
    setTimeout(() => res.end(`ok ${req.url}`), req.url!.endsWith('/crash') ? 300 : 0);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  runs = rxgateRuns();
  // The runner, with the module that adds the crash stage (on dist/ or on the sources, as rxgateRuns starts them).
  const crash = JSON.stringify(pathToFileURL(join(ROOT, CLI_FROM === 'dist' ? 'test/support/crash-module.dist.mjs' : 'test/support/crash-module.ts')).href);
  writeFileSync(join(runs.dir, 'run.mjs'), `import { runCli } from ${JSON.stringify(CLI.cli)};
import * as mod from ${crash};
await runCli(process.argv.slice(2), { module: ${crash}, stages: mod.stages });
`);
});

afterAll(async () => {
  runs?.remove();
  await new Promise((r) => upstream?.close(r));
});

const CRASHED = 'gateway worker crashed: it finishes its requests in flight and exits';

function configFor(port: number, routes = '  - { path: /*, service: up, pipeline: [crash], crash: true }\n'): string {
  const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  return `
listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services: { up: { upstreams: ["${up}"] } }
routes:
${routes}`;
}

/** `--workers 2` on configFor's config (watch off) plus `extra` keys, once both listen. */
async function startTwo(extra = ''): Promise<{ port: number; file: string; proc: RxgateProcess; admin: string }> {
  const port = await freePort();
  const file = runs.file(extra + configFor(port));
  const proc = runs.start(['--config', file, '--workers', '2'], { RXGATE_LOG_LEVEL: 'info' });
  const admin = `http://127.0.0.1:${(await proc.logged('rxgate admin listening'))['port'] as number}`;
  await proc.logged('rxgate listening', 2);
  return { port, file, proc, admin };
}

/** Each on a connection of its own, so the kernel spreads them over the workers. */
async function freshGets(gw: string, paths: string[]): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  for (const path of paths) {
    const agent = new Agent({ connections: 1 });
    const res = await request(`${gw}${path}`, { dispatcher: agent });
    out.push([res.statusCode, await res.body.text()]);
    await agent.close();
  }
  return out;
}

// One after the other: run at once, four processes of three threads starting together on the shared
// 2-core machine took longer than the timeout (load ~30).
describe('a worker thread that crashes', { timeout: 120_000 }, () => {
  it('is replaced while the others serve; its request in flight is answered, the crash is logged, and SIGTERM still exits 0', async ({ expect }) => {
    const port = await freePort();
    const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
services: { up: { upstreams: ["${up}"] } }
routes:
  - { path: /*, service: up, pipeline: [crash], crash: true }
`), '--workers', '2'], { RXGATE_LOG_LEVEL: 'info' });
    const admin = `http://127.0.0.1:${(await proc.logged('rxgate admin listening'))['port'] as number}`;
    await proc.logged('rxgate listening', 2);
    const gw = `http://127.0.0.1:${port}`;
    const crash = await request(`${gw}/crash`);
    expect([crash.statusCode, await crash.body.text()]).toEqual([200, 'ok /crash']);
    const crashed = await proc.logged('gateway worker crashed: it finishes its requests in flight and exits');
    expect(crashed).toMatchObject({ replaced: true });
    expect(String(crashed['err'])).toContain('a bug nothing caught');
    // The replacement listens; before, the process had aborted (SIGABRT) at the crash.
    await proc.logged('rxgate listening', 3);
    for (let i = 0; i < 10; i++) {
      // A connection of its own each time, so both threads take some.
      const agent = new Agent({ connections: 1 });
      const res = await request(`${gw}/after/${i}`, { dispatcher: agent });
      expect([res.statusCode, await res.body.text()]).toEqual([200, `ok /after/${i}`]);
      await agent.close();
    }
    const ready = await request(`${admin}/ready`);
    await ready.body.dump();
    expect(ready.statusCode).toBe(200);
    proc.proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });

  it('is replaced once however many exceptions it throws: 12 crashing requests at once leave the pool at its size', async ({ expect }) => {
    const { port, proc, admin } = await startTwo();
    // Twelve connections at once: each worker takes several, and each of those throws.
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 12, pipelining: 1 });
    await Promise.all(Array.from({ length: 12 }, (_, i) => pool.request({ path: `/b${i}/crash`, method: 'GET' })
      .then((r) => r.body.dump(), () => undefined)));
    await pool.close();
    await proc.logged(CRASHED);
    // The crashed workers drain (their requests wait 300 ms upstream) and exit; until then the overview counts them.
    let workers = 0;
    for (let i = 0; i < 300; i++) {
      const res = await request(`${admin}/api/overview`);
      workers = ((await res.body.json()) as { workers: number }).workers;
      const crashed = proc.lines.filter((l) => l['msg'] === CRASHED).length;
      if (workers === 2 && proc.lines.filter((l) => l['msg'] === 'rxgate listening').length === 2 + crashed) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const crashed = proc.lines.filter((l) => l['msg'] === CRASHED);
    // One line, and one replacement, per worker: before, one per exception (12 lines, 12 new workers).
    expect(crashed.length).toBeGreaterThanOrEqual(1);
    expect(crashed.length).toBeLessThanOrEqual(2);
    expect(crashed.every((l) => l['replaced'] === true)).toBe(true);
    expect(proc.lines.filter((l) => l['msg'] === 'rxgate listening').length).toBe(2 + crashed.length);
    expect(workers).toBe(2);
    expect(await freshGets(`http://127.0.0.1:${port}`, ['/after/1', '/after/2', '/after/3', '/after/4'])).toEqual(
      [[200, 'ok /after/1'], [200, 'ok /after/2'], [200, 'ok /after/3'], [200, 'ok /after/4']]);
    proc.proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });

  it('is replaced by a worker of the config the workers run: not a file they refused (422), nor one never reloaded; all are built from the text the main thread read', async ({ expect }) => {
    const port = await freePort();
    const file = runs.file(configFor(port));
    const proc = runs.start(['--config', file, '--workers', '2'], { RXGATE_LOG_LEVEL: 'info' });
    // The main thread has read and parsed the file; its workers are still loading (a second or more).
    await proc.logged('rxgate started worker threads sharing one port');
    writeFileSync(file, configFor(port, '  - { path: /b/*, service: up }\n'));
    const admin = `http://127.0.0.1:${(await proc.logged('rxgate admin listening'))['port'] as number}`;
    await proc.logged('rxgate listening', 2);
    const gw = `http://127.0.0.1:${port}`;
    // Before, each worker read the file itself: both served /b/* alone (/a/* 404) under a main thread that ran /*.
    expect(await freshGets(gw, ['/a/1', '/a/2', '/a/3', '/a/4'])).toEqual([[200, 'ok /a/1'], [200, 'ok /a/2'], [200, 'ok /a/3'], [200, 'ok /a/4']]);
    // A config the workers refuse: the old one keeps serving.
    writeFileSync(file, configFor(port, '  - { path: /broken, service: nope }\n'));
    const refused = await request(`${admin}/reload`, { method: 'POST' });
    await refused.body.dump();
    expect(refused.statusCode).toBe(422);
    expect(await freshGets(gw, ['/a/crash'])).toEqual([[200, 'ok /a/crash']]);
    await proc.logged(CRASHED);
    // Before, the replacement read the refused file and exited with code 2, leaving the pool short.
    await proc.logged('rxgate listening', 3);
    // A valid file the workers never reloaded (watch: false) without the /* route.
    writeFileSync(file, configFor(port, '  - { path: /other/*, service: up }\n'));
    expect(await freshGets(gw, ['/b/crash'])).toEqual([[200, 'ok /b/crash']]);
    await proc.logged(CRASHED, 2);
    await proc.logged('rxgate listening', 4);
    // Every worker, the replacements too, serves the running config: /* answers (the file's would say 404).
    const paths = Array.from({ length: 10 }, (_, i) => `/c/${i}`);
    expect(await freshGets(gw, paths)).toEqual(paths.map((p) => [200, `ok ${p}`]));
    expect(proc.lines.filter((l) => l['msg'] === 'gateway worker exited')).toEqual([]);
    proc.proc.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });

  it('is not replaced once SIGTERM came: a replacement still starting exits without listening, and the process exits 0', async ({ expect }) => {
    // A drain long enough for the replacement to reach its question, however slowly it starts here.
    const { port, proc } = await startTwo('drain: { timeout: 100s }\n');
    const crash = freshGets(`http://127.0.0.1:${port}`, ['/a/crash']);
    // The replacement starts at once (a slot's first crash) and takes a second or more to build: SIGTERM lands meanwhile.
    await proc.logged(CRASHED);
    proc.proc.kill('SIGTERM');
    // The crashing request still finishes (the drain lets it).
    expect(await crash).toEqual([[200, 'ok /a/crash']]);
    expect(await proc.exited).toBe(0);
    // Before, it listened (a third 'rxgate listening'), took connections and drained at once.
    expect(proc.lines.filter((l) => l['msg'] === 'gateway worker not started: the gateway is stopping')).toHaveLength(1);
    expect(proc.lines.filter((l) => l['msg'] === 'rxgate listening')).toHaveLength(2);
    expect(proc.lines.filter((l) => l['msg'] === 'gateway worker exited')).toEqual([]);
  });
});
