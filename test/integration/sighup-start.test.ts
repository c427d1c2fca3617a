import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * A SIGHUP that arrives while the gateway is still starting (here: waiting
 * for a Redis that accepts and never answers) is held and acted on once it
 * listens, instead of ending the process as Node's default action does.
 */

let runs: RxgateRuns;
let silentRedis: Server;
const sockets = new Set<Socket>();
let connected: () => void;
const redisConnected = new Promise<void>((resolve) => { connected = resolve; });

beforeAll(async () => {
  runs = rxgateRuns();
  silentRedis = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    connected();
  });
  await new Promise<void>((resolve) => silentRedis.listen(0, '127.0.0.1', resolve));
});

afterAll(() => {
  runs.remove();
  for (const s of sockets) s.destroy();
  silentRedis.close();
});

it('reloads once it listens when SIGHUP came during start-up, and keeps running', async () => {
  const { port } = silentRedis.address() as { port: number };
  const file = runs.file(`listen: { host: 127.0.0.1, port: 0 }
redis: { url: "redis://127.0.0.1:${port}" }
services:
  up: { upstreams: ["http://127.0.0.1:9"] }
routes:
  - { path: /*, service: up, rateLimit: { limit: 5, window: 1m, store: redis } }
`);
  const proc = runs.start(['--config', file], { RXGATE_LOG_LEVEL: 'info' });
  // The gateway is past reading its config and waiting on Redis: the hold is on.
  await redisConnected;
  proc.proc.kill('SIGHUP');
  const reloaded = await proc.logged('config reloaded');
  expect(reloaded['trigger']).toBe('signal');
  expect(proc.lines.some((l) => l['msg'] === 'rxgate listening')).toBe(true);
  expect(proc.proc.exitCode).toBeNull();
  expect(proc.proc.signalCode).toBeNull();
});
