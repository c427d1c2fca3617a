import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Review RR2 #1: a stage written as an `async` function, nested inside
 * another stage, returns a Promise the outer stage cannot pipe: the outer
 * stage's TypeError is answered 500, and the Promise's rejection, which
 * nothing handles, ended the CLI's process (Node's default). The CLI logs it
 * and serves on.
 */
const root = join(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'rxgate-rejection-'));
let upstream: Server;
let child: ChildProcess | null = null;
let out = '';
let port = 0;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

beforeAll(async () => {
  upstream = createHttpServer((req, res) => res.end(`upstream ${req.url}`));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const lib = pathToFileURL(join(root, 'lib/index.ts')).href;
  const mod = join(dir, 'gateway.ts');
  // The module lives outside the repository: zod by its path.
  const zod = pathToFileURL(createRequire(import.meta.url).resolve('zod')).href;
  writeFileSync(mod, `import { compose, defineStage, runCli, type Policy } from ${JSON.stringify(lib)};
import { z } from ${JSON.stringify(zod)};
const outer: Policy = (next) => (req) => next(req).pipe();
const asyncThrows = (() => async () => { throw new Error('async stage failed'); }) as unknown as Policy;
export const stages = [defineStage({ name: 'nestedAsync', options: z.strictObject({}), build: () => compose(outer, asyncThrows) })];
await runCli(process.argv.slice(2), { stages });
`);
  const config = join(dir, 'gateway.yaml');
  writeFileSync(config, `services: { svc: { upstreams: ["http://127.0.0.1:${(upstream.address() as AddressInfo).port}"] } }
routes:
  - { path: /nested, service: svc, nestedAsync: {} }
  - { path: /ok, service: svc }
`);
  port = await freePort();
  child = spawn(process.execPath, ['--import', pathToFileURL(join(root, 'bin/loader/register.mjs')).href, mod, '--config', config, '--port', String(port), '--host', '127.0.0.1'], {
    env: { ...process.env, RXGATE_LOG_LEVEL: 'error' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the CLI exited ${child.exitCode}: ${out}`);
    try {
      await (await request(`http://127.0.0.1:${port}/ok`)).body.text();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}, 60_000);

afterAll(async () => {
  if (child !== null && child.exitCode === null) child.kill('SIGKILL');
  await new Promise((r) => upstream?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('the CLI and a Promise nothing handled', () => {
  it('answers the nested async stage 500, logs the rejection as an internal error, and serves on', async () => {
    const exited = new Promise<number | null>((resolve) => child!.once('exit', resolve));
    const nested = await request(`http://127.0.0.1:${port}/nested`);
    expect([nested.statusCode, (await nested.body.json() as { error: { code: string } }).error.code]).toEqual([500, 'INTERNAL_ERROR']);
    // The rejection is reported after the answer: wait until it is logged or the process ends (before: exit 1).
    while (!out.includes('unhandled rejection') && child!.exitCode === null) {
      await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
    }
    expect(child!.exitCode).toBe(null);
    expect(out).toContain('async stage failed');
    const ok = await request(`http://127.0.0.1:${port}/ok`);
    expect([ok.statusCode, await ok.body.text()]).toEqual([200, 'upstream /ok']);
  }, 60_000);
});
