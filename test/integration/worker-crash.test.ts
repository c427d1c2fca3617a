import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/global-setup.ts';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';

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
  // The runner, with the module that adds the crash stage.
  writeFileSync(join(runs.dir, 'run.mjs'), `import { runCli } from ${JSON.stringify(pathToFileURL(join(ROOT, 'lib/cli.ts')).href)};
import * as mod from ${JSON.stringify(pathToFileURL(join(ROOT, 'test/support/crash-module.ts')).href)};
await runCli(process.argv.slice(2), { module: ${JSON.stringify(pathToFileURL(join(ROOT, 'test/support/crash-module.ts')).href)}, stages: mod.stages });
`);
});

afterAll(async () => {
  runs?.remove();
  await new Promise((r) => upstream?.close(r));
});

describe('a worker thread that crashes', { timeout: 60_000 }, () => {
  it('is replaced while the others serve; its request in flight is answered, the crash is logged, and SIGTERM still exits 0', async () => {
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
});
