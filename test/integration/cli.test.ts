import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../support/servers.ts';

const BIN = join(import.meta.dirname, '../../bin/rxgate.mjs');
const dir = mkdtempSync(join(tmpdir(), 'rxgate-cli-'));
const children = new Set<ChildProcess>();

// Tests run concurrently (each spawn costs a second of CPU): clean up only once all are done.
afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. */
function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, RXGATE_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const GOOD = `
services:
  users: { upstreams: ["\${USERS_URL:-http://127.0.0.1:3001}"], timeout: 5s }
routes:
  - { path: /api/*, service: users, rewrite: { stripPrefix: /api } }
`;

describe.concurrent('rxgate CLI', () => {
  it('exits with status 2 and names the key\'s path for a bad config', async () => {
    const bad = file('bad.yaml', `
services:
  users: { upstreams: ["ftp://nope"] }
routes:
  - { path: /api/*, servce: users }
`);
    const res = await run(['--config', bad]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain(`invalid config ${bad}`);
    expect(res.stderr).toContain('services.users.upstreams[0]: expected an http:// or https:// URL');
    expect(res.stderr).toContain('routes[0].servce: unknown key');
    // A config error is not a crash: no stack trace.
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits with status 2 for a missing file, a bad --port and an unknown flag', async () => {
    const [missing, port, flag] = await Promise.all([
      run(['--config', join(dir, 'does-not-exist.yaml')]),
      run(['--config', file('ok1.yaml', GOOD), '--port', 'eighty']),
      run(['--confg', 'x.yaml']),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read the file');
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('--port must be a port number');
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('Usage: rxgate');
  });

  it('exits with status 1 and one line, no stack, when the port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as AddressInfo).port;
    try {
      const res = await run(['--config', file('ok-taken.yaml', GOOD), '--host', '127.0.0.1', '--port', String(port)]);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(`rxgate: rxgate could not listen on 127.0.0.1:${port}`);
      expect(res.stderr).not.toMatch(/\n\s+at /);
    } finally {
      taken.close();
    }
  });

  it('exits with status 2 and one line for an RXGATE_LOG_LEVEL that is not a level, even when log.level is valid', async () => {
    const res = await run(['--config', file('ok-level.yaml', `log: { level: info }\n${GOOD}`), '--check'], { RXGATE_LOG_LEVEL: 'verbose' });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('RXGATE_LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got "verbose"');
    expect(res.stderr).not.toMatch(/\n\s+at /);
  });

  it('prints usage for --help and exits 0', async () => {
    const res = await run(['--help']);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('Usage: rxgate --config FILE');
    expect(res.stdout).toContain('--check');
  });

  it('validates with --check without starting, exiting 0 for a good config and 2 for a bad one', async () => {
    const good = file('good.yaml', GOOD);
    const [ok, bad] = await Promise.all([
      run(['--config', good, '--check']),
      run(['--check', '--config', file('bad2.yaml', GOOD.replace('service: users', 'service: nobody'))]),
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`${good}: OK (1 services, 1 routes)`);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('routes[0].service: unknown service "nobody" (known: users)');
  });

  it('refuses --workers 0 under --check as the start does, exit 2', async () => {
    const res = await run(['--config', file('w0.yaml', GOOD), '--check', '--workers', '0']);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--workers must be a whole number of at least 1, got 0');
    expect(res.stdout).not.toContain('OK');
  });

  describe('serving', () => {
    let upstream: TestUpstream | undefined;
    afterEach(async () => {
      await upstream?.close();
      upstream = undefined;
    });

    it('starts from a config, proxies requests, and exits 0 on SIGTERM', async () => {
      upstream = await startUpstream((req, res) => res.end(`upstream saw ${req.url}`));
      const child = spawn(process.execPath, [BIN, '--config', file('serve.yaml', GOOD), '--port', '0', '--host', '127.0.0.1'], {
        env: { ...process.env, RXGATE_LOG_LEVEL: 'info', USERS_URL: upstream.url }, stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      // pino logs one JSON line per event; the listen line carries the port.
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /"port":(\d+)/.exec(out);
          if (m !== null && out.includes('rxgate listening')) resolve(Number(m[1]));
        });
        child.on('close', () => reject(new Error(`rxgate exited before listening: ${out}`)));
      });
      expect(port).toBeGreaterThan(0);
      const res = await request(`http://127.0.0.1:${port}/api/hello`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('upstream saw /hello');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    });
  });
});
