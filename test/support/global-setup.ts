import { spawnSync, type ChildProcess } from 'node:child_process';
import { chooseCliFrom, cliFromLine, newerInput, type CliChoice } from './cli-from.ts';
import { startRedisServer, stopRedisServer } from './redis-server.ts';
import { existsSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

/**
 * Starts one real `redis-server` on a free loopback port for the whole run and
 * hands its URL to tests through `inject('redisUrl')`. Without redis-server
 * the Redis tests say so loudly; under CI (`CI=true`) they fail instead of
 * skipping (see test/support/redis.ts). Decides once where the tests' rxgate
 * processes load rxgate from (test/support/cli-from.ts), says so, and hands it
 * over as `inject('rxgateCli')`.
 */
let redis: ChildProcess | undefined;
// vitest loads this module and calls setup once per project that runs files: the choice is made, and
// said, once per run (held on globalThis, which the projects' module instances share).
const CLI_KEY = Symbol.for('rxgate.tests.cliFrom');
type Made = Promise<{ choice: CliChoice; at: number }>;
const held = globalThis as { [CLI_KEY]?: Made };

export async function setup(project: TestProject): Promise<void> {
  const at = Date.now();
  // Watch mode reruns files after an edit without calling setup again: a choice of dist/ would go stale, so the loader.
  const watching = project.vitest.config.watch;
  held[CLI_KEY] ??= (watching ? Promise.resolve<CliChoice>({ from: 'loader', why: 'watch mode: reruns after an edit must not run the build from before it' }) : chooseCliFrom()).then((choice) => {
    console.warn(`\n${cliFromLine(choice)}\n`);
    return { choice, at };
  });
  project.provide('rxgateCli', (await held[CLI_KEY]).choice.from);
  const found = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (found.status !== 0) {
    console.warn('\n[rxgate tests] redis-server NOT FOUND: Redis tests will be ' +
      (process.env.CI === 'true' ? 'FAILED (CI=true)' : 'SKIPPED') + '. Install it: apt-get install -y redis-server\n');
    project.provide('redisUrl', '');
    return;
  }
  const port = await freePort();
  redis = await startRedisServer(port);
  project.provide('redisUrl', `redis://127.0.0.1:${port}`);
}

export async function teardown(): Promise<void> {
  if (redis !== undefined) await stopRedisServer(redis);
  // A source changed during a run from dist/: processes started after it ran the build from before it.
  const made = await held[CLI_KEY];
  delete held[CLI_KEY];
  const changed = made?.choice.from === 'dist' ? newerInput(made.at) : undefined;
  if (changed !== undefined) console.warn(`\n[rxgate tests] ${changed} CHANGED DURING THE RUN: rxgate processes started from dist/ after that ran the code from before it\n`);
  // A build during the run (another checkout user's `npm test`) rewrote dist/ under the processes started from it.
  const stamp = join(import.meta.dirname, '../../dist/.tsbuildinfo');
  if (made?.choice.from === 'dist' && (!existsSync(stamp) || statSync(stamp).mtimeMs >= made.at)) console.warn('\n[rxgate tests] A BUILD REWROTE dist/ DURING THE RUN: rxgate processes started from dist/ may have run a mix of builds\n');
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.once('error', reject);
  });
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    rxgateCli: import('./cli-from.ts').CliFrom;
  }
}
