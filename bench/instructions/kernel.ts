/**
 * The kernel's share of a target's CPU, which callgrind cannot see: each
 * target runs natively (no valgrind), gets `--warmup` requests, then
 * `--requests` more from the same client as run.ts, and its user and system
 * CPU time over those (utime and stime from /proc/<pid>/stat, 10 ms ticks)
 * are printed per request. A load run: hold the bench lock.
 *
 *   flock /tmp/rxgate-bench.lock node --import ./bin/loader/register.mjs bench/instructions/kernel.ts
 *     [--targets minimal,bare] [--requests 40000] [--warmup 10000] [--concurrency 8] [--rounds 2]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { argValue } from '../args.ts';
import { ChildServer, freePort, waitReady } from '../child.ts';
import { WrkLikeClient } from './client.ts';
import { signToken } from '../token.ts';
import { LOADER, REPO, TARGETS, targetArgs, type TargetName } from './run.ts';

const TICK = 1 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim() || 100);

/** User and system CPU seconds of one process (its threads included). */
function cpu(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) * TICK, system: Number(fields[12]) * TICK };
}

async function main(): Promise<void> {
  const names = (argValue('targets') ?? 'minimal,bare').split(',') as TargetName[];
  for (const t of names) if (!TARGETS.includes(t)) throw new TypeError(`unknown target ${t}`);
  const requests = Number(argValue('requests') ?? 40_000);
  const warmup = Number(argValue('warmup') ?? 10_000);
  const concurrency = Number(argValue('concurrency') ?? 8);
  const rounds = Number(argValue('rounds') ?? 2);
  const upstreamPort = await freePort();
  const upstreamOrigin = `http://127.0.0.1:${upstreamPort}`;
  const upstream = new ChildServer('upstream', process.execPath, ['--import', LOADER, join(REPO, 'bench', 'upstream.ts'), '--port', String(upstreamPort)]);
  try {
    await waitReady(upstream, { origin: upstreamOrigin, path: '/ready', headers: {}, timeoutMs: 20_000 });
    const secret = randomBytes(32).toString('hex');
    const headers = { authorization: `Bearer ${await signToken(secret)}` };
    const env = { BENCH_UPSTREAM: upstreamOrigin, BENCH_JWT_SECRET: secret, NODE_ENV: 'production' };
    process.stdout.write('| target | round | user µs/request | system µs/request | system share |\n|---|---:|---:|---:|---:|\n');
    // Targets interleaved round by round: each round sees the same machine load.
    const started = new Map<TargetName, { child: ChildServer; client: WrkLikeClient | null; sent: number }>();
    try {
      for (const target of names) {
        const port = await freePort();
        const child = new ChildServer(target, process.execPath, targetArgs(target, REPO, port, upstreamOrigin), env, REPO);
        const s = { child, client: null as WrkLikeClient | null, sent: 0 };
        started.set(target, s);
        await waitReady(child, { origin: `http://127.0.0.1:${port}`, path: '/bench?r=ready', headers, timeoutMs: 30_000 });
        s.client = await WrkLikeClient.open(port, concurrency, headers);
      }
      const nonce = randomBytes(4).toString('hex');
      for (let round = 1; round <= rounds; round++) {
        for (const [target, s] of started) {
          const path = target === 'full-hit' ? () => '/bench?r=hit' : (i: number) => `/bench?r=${nonce}-${i}`;
          const statuses: Record<string, number> = {};
          // Warm-up right before each measured round (the memory reducer shrinks an idle heap).
          const client = s.client as WrkLikeClient;
          await client.drive((i) => path(s.sent + i), warmup, statuses);
          s.sent += warmup;
          const pid = s.child.pid as number;
          const before = cpu(pid);
          await client.drive((i) => path(s.sent + i), requests, statuses);
          s.sent += requests;
          const after = cpu(pid);
          const user = ((after.user - before.user) / requests) * 1e6;
          const system = ((after.system - before.system) / requests) * 1e6;
          process.stdout.write(`| ${target} | ${round} | ${user.toFixed(1)} | ${system.toFixed(1)} | ${((100 * system) / (user + system)).toFixed(0)}% |\n`);
        }
      }
    } finally {
      for (const s of started.values()) {
        s.client?.close();
        await s.child.stop();
      }
    }
  } finally {
    await upstream.stop();
  }
}

await main();
