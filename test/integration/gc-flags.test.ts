import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { rxgateRuns } from '../support/rxgate-process.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';

// The CLI sets --no-parallel-scavenge at start (docs/gc-promotion.md, "The
// pause, phase by phase"). V8 has no way to read a flag back, so this watches
// what the flag changes: V8's --trace-parallel-scavenge prints one line per
// Scavenger a scavenge ran, and a scavenge runs one Scavenger per task it
// plans: one with the flag, two or more without it (one per MB of young
// generation plus one, up to the worker threads), whatever the scheduling.

const runs = rxgateRuns();
let upstream: TestUpstream | undefined;

afterEach(async () => {
  await upstream?.close();
  upstream = undefined;
});
afterAll(() => runs.remove());

/**
 * Starts the CLI under `nodeFlags`, sends `requests` requests once it
 * listens, stops it, and returns the number of Scavengers of each scavenge
 * that ran after it started listening.
 */
async function scavengersPerScavenge(nodeFlags: string[], requests: number): Promise<number[]> {
  upstream = await startUpstream((_req, res) => res.end('x'.repeat(2048)));
  const config = runs.file(`services:\n  up: { upstreams: ["${upstream.url}"] }\nroutes:\n  - { path: /*, service: up }\n`);
  // A 1 MB semi-space: a scavenge every ~100 requests, and still two tasks planned by default.
  const gateway = runs.start(['--config', config, '--port', '0', '--host', '127.0.0.1'], { RXGATE_LOG_LEVEL: 'info' },
    ['--max-semi-space-size=1', '--trace-gc', '--trace-parallel-scavenge', ...nodeFlags]);
  // V8's traces and pino's log lines share stdout, in order.
  const port = Number((await gateway.logged('rxgate listening'))['port']);
  const listenedAt = gateway.stdout().indexOf('rxgate listening');
  // Sixteen at a time: the machine may be shared.
  let next = 0;
  await Promise.all(Array.from({ length: 16 }, async () => {
    while (next < requests) {
      const res = await request(`http://127.0.0.1:${port}/r/${next++}`);
      expect(res.statusCode).toBe(200);
      await res.body.text();
    }
  }));
  gateway.proc.kill('SIGTERM');
  await gateway.exited;
  const counts: number[] = [];
  let scavengers = 0;
  for (const line of gateway.stdout().slice(listenedAt).split('\n')) {
    if (/scavenge\[0x[0-9a-f]+\]: time=/.test(line)) scavengers++;
    else if (/\bScavenge\b/.test(line)) {
      counts.push(scavengers);
      scavengers = 0;
    }
  }
  // The first count may hold a scavenge whose Scavenger lines came before the listen line.
  return counts.slice(1);
}

describe('the V8 flags the CLI sets at start', { timeout: 90_000 }, () => {
  it('runs every scavenge of a started gateway on its main thread alone (--no-parallel-scavenge)', async () => {
    const counts = await scavengersPerScavenge([], 1000);
    expect(counts.length).toBeGreaterThanOrEqual(3);
    expect(counts.every((n) => n === 1)).toBe(true);
  });

  it('leaves the flag to node when it is on node\'s command line (node --parallel-scavenge)', async () => {
    const counts = await scavengersPerScavenge(['--parallel-scavenge'], 1000);
    expect(counts.length).toBeGreaterThanOrEqual(3);
    expect(counts.some((n) => n >= 2)).toBe(true);
  });
});
