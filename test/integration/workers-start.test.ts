import { createServer, type Server } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort, rxgateRuns } from '../support/rxgate-process.ts';

/**
 * `--workers N` when a listener cannot bind: the process ends with status 1
 * and the listener's one line, as a single process does, instead of a stack
 * trace (the admin listener) or a main thread left running with no worker
 * (the public port).
 */

const runs = rxgateRuns();
const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});
afterAll(() => runs.remove());

async function taken(): Promise<number> {
  const port = await freePort();
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  servers.push(server);
  return port;
}

async function run(yaml: string, port: number): Promise<{ code: number | null; stderr: string }> {
  const gw = runs.start(['--config', runs.file(yaml), '--host', '127.0.0.1', '--port', String(port), '--workers', '2'], { RXGATE_LOG_LEVEL: 'warn' });
  let stderr = '';
  gw.proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const code = await gw.exited;
  return { code, stderr };
}

const SERVICES = `
services:
  up: { upstreams: ["http://127.0.0.1:9"] }
routes:
  - { path: /a, service: up }
`;

// Each test starts an rxgate process with two worker threads: generous timeouts, no duration asserted.
describe('with --workers 2, a listener that cannot bind', { timeout: 120_000 }, () => {
  it('the public port taken: every worker says so and the process exits 1', async () => {
    const port = await taken();
    const res = await run(SERVICES, port);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`rxgate: rxgate could not listen on 127.0.0.1:${port}`);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('the admin port taken: one line, no stack, exit 1', async () => {
    const adminPort = await taken();
    const res = await run(`admin: { host: 127.0.0.1, port: ${adminPort} }\n${SERVICES}`, 0);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`rxgate: rxgate admin listener could not listen on 127.0.0.1:${adminPort}`);
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });
});
