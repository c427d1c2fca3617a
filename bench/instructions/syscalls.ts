/**
 * The system calls a target makes per request, which callgrind cannot see:
 * the target runs natively, gets `--warmup` requests, then `strace -c -f`
 * attaches to it for `--requests` more from the same client as run.ts, and
 * strace's table (calls per syscall, all threads) is printed with the
 * count per request. A hit should cost one recvfrom and one sendto
 * (docs/cache-hit.md, tenth round). strace slows the target: the counts
 * mean something, its times do not. A load run: hold the bench lock.
 *
 *   flock /tmp/rxgate-bench.lock node --import ./bin/loader/register.mjs bench/instructions/syscalls.ts
 *     [--target full-hit] [--requests 2000] [--warmup 5000] [--concurrency 4] [--root DIR]
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { argValue } from '../args.ts';
import { ChildServer, freePort, waitReady } from '../child.ts';
import { signToken } from '../token.ts';
import { WrkLikeClient } from './client.ts';
import { LOADER, REPO, TARGETS, targetArgs, type TargetName } from './run.ts';

async function main(): Promise<void> {
  const target = (argValue('target') ?? 'full-hit') as TargetName;
  if (!TARGETS.includes(target)) throw new TypeError(`unknown target ${target}`);
  const requests = Number(argValue('requests') ?? 2_000);
  const warmup = Number(argValue('warmup') ?? 5_000);
  const concurrency = Number(argValue('concurrency') ?? 4);
  const root = resolve(argValue('root') ?? REPO);
  const upstreamPort = await freePort();
  const origin = `http://127.0.0.1:${upstreamPort}`;
  const upstream = new ChildServer('upstream', process.execPath, ['--import', LOADER, join(REPO, 'bench', 'upstream.ts'), '--port', String(upstreamPort)]);
  try {
    await waitReady(upstream, { origin, path: '/ready', headers: {}, timeoutMs: 20_000 });
    const secret = randomBytes(32).toString('hex');
    const headers = { authorization: `Bearer ${await signToken(secret)}` };
    const port = await freePort();
    const env = { BENCH_UPSTREAM: origin, BENCH_JWT_SECRET: secret, NODE_ENV: 'production' };
    const child = new ChildServer(target, process.execPath, targetArgs(target, root, port, origin), env, root);
    let client: WrkLikeClient | null = null;
    try {
      await waitReady(child, { origin: `http://127.0.0.1:${port}`, path: '/bench?r=ready', headers, timeoutMs: 30_000 });
      client = await WrkLikeClient.open(port, concurrency, headers);
      const path = target === 'full-hit' ? () => '/bench?r=hit' : (i: number) => `/bench?r=${i}`;
      const statuses: Record<string, number> = {};
      await client.drive(path, warmup, statuses);
      const strace = spawn('strace', ['-c', '-f', '-p', String(child.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
      let table = '';
      strace.stderr.on('data', (d: Buffer) => { table += d.toString(); });
      await sleep(1_000); // attached to every thread
      await client.drive((i) => path(warmup + i), requests, statuses);
      strace.kill('SIGINT');
      await new Promise((r) => strace.once('exit', r));
      process.stdout.write(`${target}: ${requests} requests, statuses ${JSON.stringify(statuses)}\n\n| syscall | calls | per request |\n|---|---:|---:|\n`);
      for (const line of table.split('\n')) {
        const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line);
        if (m !== null && m[2] !== 'total') process.stdout.write(`| ${m[2]} | ${m[1]} | ${(Number(m[1]) / requests).toFixed(2)} |\n`);
      }
    } finally {
      client?.close();
      await child.stop();
    }
  } finally {
    await upstream.stop();
  }
}

await main();
