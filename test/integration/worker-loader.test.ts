import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, CLI_FROM, freePort } from '../support/rxgate-process.ts';

/**
 * Worker threads started from dist/ register the TypeScript loader only for
 * a pipeline module that is TypeScript (session 12's leftover, F21 item 3).
 * They registered it always: ~0.2 s of CPU per worker start for nothing
 * (docs/workers.md has the measurement). Each worker's pipeline module here
 * writes, from its thread, whether a .ts file beside it loads: only through
 * the loader on Node 20. From dist/ only: from the sources every worker
 * needs the loader, and does register it.
 */

const dir = mkdtempSync(join(tmpdir(), 'rxgate-worker-loader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(join(dir, 'probe.ts'), 'export const typed: number = 1;\n');
const probe = `import { writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
const outcome = await import('./probe.ts').then(() => 'loaded', (err) => err.code);
writeFileSync(new URL(\`./seen-\${process.env.RXGATE_PROBE}-\${threadId}\`, import.meta.url), outcome);
`;
writeFileSync(join(dir, 'pipeline.mjs'), probe);
writeFileSync(join(dir, 'pipeline.ts'), `${probe}export const stages: unknown[] = [];\n`);
const config = join(dir, 'gw.yaml');
writeFileSync(config, 'services:\n  s: { upstreams: ["http://127.0.0.1:9"] }\nroutes:\n  - { path: /*, service: s }\n');

/** Runs rxgate from dist/ with two workers on `pipeline` until both listen; returns what each worker's pipeline module saw. */
async function workersSaw(pipeline: string): Promise<string[]> {
  const run = join(dir, `run-${pipeline}.mjs`);
  writeFileSync(run, `import { runCli } from ${JSON.stringify(CLI.cli)};\nawait runCli(process.argv.slice(2), { module: ${JSON.stringify(pathToFileURL(join(dir, pipeline)).href)} });\n`);
  const args = [run, '--config', config, '--host', '127.0.0.1', '--port', String(await freePort()), '--workers', '2'];
  const proc = spawn(process.execPath, args, { env: { ...process.env, RXGATE_LOG_LEVEL: 'info', RXGATE_PROBE: pipeline }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  try {
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.split('"msg":"rxgate listening"').length > 2) resolve();
      });
      proc.on('exit', (code) => reject(new Error(`rxgate exited ${code}: ${out}`)));
    });
  } finally {
    proc.kill('SIGKILL');
  }
  return readdirSync(dir).filter((f) => f.startsWith(`seen-${pipeline}-`)).map((f) => readFileSync(join(dir, f), 'utf8'));
}

describe.skipIf(CLI_FROM !== 'dist')('the TypeScript loader in worker threads started from dist/', { timeout: 60_000 }, () => {
  it('is not registered for a JavaScript pipeline module', async () => {
    expect(await workersSaw('pipeline.mjs')).toEqual(['ERR_UNKNOWN_FILE_EXTENSION', 'ERR_UNKNOWN_FILE_EXTENSION']);
  });

  it('is registered for a TypeScript one', async () => {
    expect(await workersSaw('pipeline.ts')).toEqual(['loaded', 'loaded']);
  });
});
