import { afterAll, expect, it } from 'vitest';
import { isLoopback, OPEN_ADMIN } from '../../lib/admin/listener.ts';
import { rxgateRuns } from '../support/rxgate-process.ts';

/**
 * An admin listener on 0.0.0.0 (what docs/operations.md suggests in a
 * container) started without a word (A16-findings F5): it has no
 * authentication, and anyone reaching the port reads the metrics and the
 * upstream addresses (/api/overview) and can POST /reload. It now says so
 * once, at warn, when it listens off loopback.
 */

const runs = rxgateRuns();
afterAll(() => runs.remove());

const CONFIG = 'listen: { host: 127.0.0.1, port: 0 }\nreload: { watch: false }\nservices: { up: { upstreams: ["http://127.0.0.1:1"] } }\nroutes: [{ path: /api/*, service: up }]\n';

it('warns once when the admin listener is on a non-loopback address, and not on 127.0.0.1', { timeout: 30_000 }, async () => {
  const lines = [];
  for (const host of ['0.0.0.0', '127.0.0.1']) {
    const gw = runs.start(['--config', runs.file(`${CONFIG}admin: { host: "${host}", port: 0 }\n`)], { RXGATE_LOG_LEVEL: 'info' });
    await Promise.all([gw.logged('rxgate listening'), gw.logged('rxgate admin listening')]);
    gw.proc.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
    lines.push(gw.lines.filter((l) => l['msg'] === OPEN_ADMIN));
  }
  expect(lines[0]).toHaveLength(1);
  expect(lines[0]![0]).toMatchObject({ level: 40, host: '0.0.0.0' });
  expect(lines[1]).toEqual([]);
});

it('counts 127.0.0.0/8, ::1, localhost and IPv4-mapped loopback as loopback, and nothing else', () => {
  expect(['127.0.0.1', '127.1.2.3', '::1', 'localhost', 'LOCALHOST', '::ffff:127.0.0.1'].filter((h) => !isLoopback(h))).toEqual([]);
  expect(['0.0.0.0', '::', '10.0.0.5', '::ffff:10.0.0.1', '127.0.0.1.example', 'example.com'].filter(isLoopback)).toEqual([]);
});
