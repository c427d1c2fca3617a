import { spawnSync, type ChildProcess } from 'node:child_process';
import { startRedisServer, stopRedisServer } from './redis-server.ts';
import { createServer } from 'node:net';
import type { TestProject } from 'vitest/node';

/**
 * Starts one real `redis-server` on a free loopback port for the whole run and
 * hands its URL to tests through `inject('redisUrl')`. Without redis-server
 * the Redis tests say so loudly; under CI (`CI=true`) they fail instead of
 * skipping (see test/support/redis.ts).
 */
let redis: ChildProcess | undefined;

export async function setup(project: TestProject): Promise<void> {
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
  }
}
