/**
 * `npm run bench`: the same load against every target, interleaved
 * (A B C … A B C …), medians over the rounds. See docs/readme/bench.md.
 *
 *   npm run bench                        # 3 rounds × 10 s per target, 3 s warmup
 *   npm run bench -- --quick             # CI smoke: 1 round × 2 s, no warmup
 *   npm run bench -- --targets direct,minimal,nginx --duration 5 --rounds 5
 *   npm run bench -- --overhead          # pipeline overhead micro-benchmark
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signToken } from './token.ts';
import { ChildServer, freePort, killAllSync, probe, stopAll, waitReady } from './child.ts';
import { cpuSeconds, rssBytes } from './cpu.ts';
import { pickGenerator, type LoadGenerator } from './load.ts';
import { findNginx, nginxVersion } from './nginx.ts';
import { PAYLOAD } from './payload.ts';
import { machineInfo, markdown, type RoundSample, type RunReport, type TargetOutcome } from './report.ts';
import { parseCli, USAGE, type Cli } from './cli.ts';
import { selectTargets, type Target } from './targets.ts';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_DIR = join(REPO_ROOT, 'bench', 'results');
// Generous: on a shared 2-core machine two worker threads can take over 10 s to listen.
const START_TIMEOUT_MS = 30_000;

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

function nodeTsx(file: string, args: string[]): [string, string[]] {
  return [process.execPath, ['--import', join(REPO_ROOT, 'bin', 'loader', 'register.mjs'), join(REPO_ROOT, 'bench', file), ...args]];
}

/** A started (or skipped/failed) target. */
interface Entry {
  target: Target;
  outcome: TargetOutcome;
  origin: string;
  child: ChildServer | null;
  /** The child runs bench/gc-probe.mjs (Node targets), so SIGUSR2 is safe and answered. */
  gcProbe: boolean;
}

const CACHE_HEADERS = ['x-cache', 'cache-status', 'x-cache-status', 'age'];

async function startTarget(
  target: Target,
  base: { scratchDir: string; upstreamOrigin: string; upstreamPort: number; workers: number; jwtSecret: string; nginx: string | null },
  headers: Record<string, string>,
  probePath: string,
): Promise<Entry> {
  const outcome: TargetOutcome = { name: target.name, label: target.label, status: 'ok', samples: [] };
  const port = await freePort();
  const launch = target.launch({ ...base, repoRoot: REPO_ROOT, port });
  if (launch.kind === 'skip') {
    outcome.status = 'skipped';
    outcome.note = launch.reason;
    return { target, outcome, origin: '', child: null, gcProbe: false };
  }
  const direct = launch.kind === 'direct';
  const origin = direct ? base.upstreamOrigin : `http://127.0.0.1:${port}`;
  const child = direct ? null : new ChildServer(target.name, launch.command, launch.args, launch.env, REPO_ROOT);
  try {
    const first = child
      ? await waitReady(child, { origin, path: probePath, headers, timeoutMs: START_TIMEOUT_MS })
      : await probe(origin, probePath, headers);
    outcome.probe = { status: first.status, bodyBytes: first.bodyBytes };
    if (first.status !== 200 || first.bodyBytes !== Buffer.byteLength(PAYLOAD)) {
      outcome.note = `its first answer was ${first.status} with ${first.bodyBytes} B (expected 200 with ${Buffer.byteLength(PAYLOAD)} B)`;
    }
    const notes = outcome.note ? [outcome.note] : [];
    if (target.checks?.includes('cacheHit')) {
      // The first probe stored the entry; the second should be a hit.
      const second = await probe(origin, probePath, headers);
      const seen = CACHE_HEADERS.filter((h) => second.headers[h] !== undefined).map((h) => `${h}: ${String(second.headers[h])}`);
      outcome.probe.cache = seen.length > 0 ? seen.join(', ') : 'no cache header';
      notes.push(/x-cache: HIT/i.test(outcome.probe.cache)
        ? `cache hit confirmed (${outcome.probe.cache})`
        : `cache hit NOT confirmed: second probe had ${outcome.probe.cache}`);
    }
    if (target.checks?.includes('auth')) {
      const anonymous = await probe(origin, `${probePath}-anonymous`, {});
      notes.push(anonymous.status === 401
        ? 'auth enforced (401 without a token)'
        : `auth NOT enforced: ${anonymous.status} without a token`);
    }
    if (notes.length > 0) outcome.note = notes.join('; ');
  } catch (error) {
    const output = child?.output() ?? '';
    outcome.status = target.unsupported?.test(output) ? 'not supported' : 'failed to start';
    outcome.note = error instanceof Error ? error.message : String(error);
    if (output) outcome.output = output;
    await child?.stop();
    return { target, outcome, origin, child: null, gcProbe: false };
  }
  return { target, outcome, origin, child, gcProbe: launch.kind === 'spawn' && launch.gcProbe === true };
}

async function measure(
  entry: Entry,
  generator: LoadGenerator,
  upstream: ChildServer,
  load: { path: string; vary: boolean; headers: Record<string, string>; connections: number; durationSec: number },
  round: number,
): Promise<RoundSample | null> {
  const targetPid = entry.child?.pid;
  const probed = entry.gcProbe && entry.child !== null;
  if (probed) await entry.child!.gcSince(); // start counting from here
  const cpu0 = cpuSeconds(targetPid);
  const up0 = cpuSeconds(upstream.pid);
  const t0 = performance.now();
  const result = await generator.run({ origin: entry.origin, ...load });
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(targetPid);
  const up1 = cpuSeconds(upstream.pid);
  const gc = probed ? await entry.child!.gcSince() : null;
  if (entry.child && entry.child.exit !== null) {
    entry.outcome.status = 'failed';
    entry.outcome.note = `exited during the load (${entry.child.exit})`;
    entry.outcome.output = entry.child.output();
    return null;
  }
  return {
    ...result,
    round,
    targetCpu: cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) / wall) * 100 : null,
    upstreamCpu: up0 !== null && up1 !== null ? ((up1 - up0) / wall) * 100 : null,
    gc,
  };
}

function runOverhead(args: string[]): number {
  // A fixed, large young generation so a measured batch never triggers a
  // scavenge; --expose-gc to start every batch from a collected heap.
  const [command, argv] = nodeTsx('overhead.ts', args);
  const child = spawnSync(command, ['--expose-gc', '--min-semi-space-size=64', '--max-semi-space-size=64', ...argv], {
    stdio: 'inherit',
    cwd: REPO_ROOT,
    timeout: 10 * 60_000,
  });
  return child.status ?? 1;
}

async function bench(cli: Cli, scratchDir: string): Promise<number> {
  const targets = selectTargets(cli.targets);
  const generator = pickGenerator(scratchDir, cli.generator);
  const nginx = targets.some((t) => t.name === 'nginx') ? findNginx() : null;
  const machine = machineInfo();
  log(`rxgate bench: ${targets.map((t) => t.name).join(', ')}; ${generator.name}; ${cli.connections} connections; ` +
    `${cli.rounds} round(s) × ${cli.durationSec} s${cli.warmupSec > 0 ? `, ${cli.warmupSec} s warmup` : ''}`);

  const upstreamPort = await freePort();
  const upstreamOrigin = `http://127.0.0.1:${upstreamPort}`;
  const [upCommand, upArgs] = nodeTsx('upstream.ts', ['--port', String(upstreamPort)]);
  const upstream = new ChildServer('upstream', upCommand, upArgs, {}, REPO_ROOT);
  const check = await waitReady(upstream, { origin: upstreamOrigin, path: '/bench', headers: {}, timeoutMs: START_TIMEOUT_MS });
  if (check.status !== 200) throw new Error(`upstream answered ${check.status}`);

  const jwtSecret = randomBytes(32).toString('hex');
  const headers = { authorization: `Bearer ${await signToken(jwtSecret)}` };
  // URLs never repeat across load runs, so the cache miss path stays a miss.
  const nonce = randomBytes(4).toString('hex');
  let runs = 0;
  const loadFor = (entry: Entry, durationSec: number) => {
    runs += 1;
    return entry.target.fixedUrl
      ? { path: '/bench?r=hit', vary: false, headers, connections: cli.connections, durationSec }
      : { path: `/bench?r=${nonce}-${runs}-`, vary: true, headers, connections: cli.connections, durationSec };
  };

  const base = { scratchDir, upstreamOrigin, upstreamPort, workers: cli.workers, jwtSecret, nginx };
  const entries: Entry[] = [];
  for (const target of targets) {
    const probePath = target.fixedUrl ? '/bench?r=hit' : `/bench?r=${nonce}-probe`;
    const entry = await startTarget(target, base, headers, probePath);
    log(`  ${target.name}: ${entry.outcome.status}${entry.outcome.note ? ` (${entry.outcome.note})` : ''}`);
    entries.push(entry);
  }
  const live = (): Entry[] => entries.filter((e) => e.outcome.status === 'ok');

  if (cli.warmupSec > 0) {
    for (const entry of live()) {
      log(`  warmup ${entry.target.name}`);
      await measure(entry, generator, upstream, loadFor(entry, cli.warmupSec), 0);
    }
  }
  for (let round = 1; round <= cli.rounds; round++) {
    for (const entry of live()) {
      // A target idle while the others ran has had its heap shrunk by V8's
      // memory reducer; a short warmup right before its round keeps that
      // burst of collections out of the measurement.
      if (cli.roundWarmupSec > 0) await measure(entry, generator, upstream, loadFor(entry, cli.roundWarmupSec), 0);
      const sample = await measure(entry, generator, upstream, loadFor(entry, cli.durationSec), round);
      if (sample === null) {
        log(`  round ${round}/${cli.rounds} ${entry.target.name}: ${entry.outcome.note}`);
        continue;
      }
      entry.outcome.samples.push(sample);
      log(
        `  round ${round}/${cli.rounds} ${entry.target.name.padEnd(9)} ${Math.round(sample.rps).toString().padStart(7)} req/s` +
          `  p50 ${sample.p50Ms.toFixed(2)} ms  p99 ${sample.p99Ms.toFixed(2)} ms  errors ${sample.socketErrors}/${sample.non2xx}` +
          (sample.gc ? `  gc ${sample.gc.scavenges} scav, ${sample.gc.markCompacts} MC (longest ${sample.gc.maxMarkCompactMs.toFixed(1)} ms), longest pause ${sample.gc.maxPauseMs.toFixed(1)} ms` : ''),
      );
    }
  }
  for (const entry of entries) if (entry.child) entry.outcome.rssBytes = rssBytes(entry.child.pid);

  const date = new Date().toISOString();
  const report: RunReport = {
    date,
    machine,
    settings: {
      generator: generator.name,
      connections: cli.connections,
      durationSec: cli.durationSec,
      rounds: cli.rounds,
      warmupSec: cli.warmupSec,
      roundWarmupSec: cli.roundWarmupSec,
      quick: cli.quick,
      workers: cli.workers,
      payloadBytes: Buffer.byteLength(PAYLOAD),
      nginx: nginx ? nginxVersion(nginx) : null,
    },
    targets: entries.map((e) => e.outcome),
  };
  const md = markdown(report);
  process.stdout.write(`\n${md}`);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const json = join(RESULTS_DIR, `${date.replace(/[:.]/g, '-')}${cli.quick ? '-quick' : ''}.json`);
  writeFileSync(json, `${JSON.stringify(report, null, 2)}\n`);
  log(`\nraw results: ${json}`);
  const out = cli.out ?? (cli.quick ? null : join(RESULTS_DIR, 'latest.md'));
  if (out) {
    writeFileSync(out, `<!-- generated by \`npm run bench\`; do not edit by hand -->\n\n${md}`);
    log(`report: ${out}`);
  }
  return live().some((e) => e.outcome.samples.length > 0) ? 0 : 1;
}

/** Scenarios with a script of their own (`--scenario NAME` runs bench/NAME.ts with the other arguments). */
const SCENARIOS = ['slow-instance', 'websocket'];

function runScenario(name: string | undefined, args: string[]): number {
  if (name === undefined || !SCENARIOS.includes(name)) {
    log(`unknown scenario ${JSON.stringify(name)} (known: ${SCENARIOS.join(', ')})`);
    return 2;
  }
  const [command, argv] = nodeTsx(`${name}.ts`, args);
  return spawnSync(command, argv, { stdio: 'inherit', cwd: REPO_ROOT, timeout: 10 * 60_000 }).status ?? 1;
}

async function main(): Promise<number> {
  const at = process.argv.indexOf('--scenario');
  if (at >= 0) return runScenario(process.argv[at + 1], process.argv.slice(2).filter((_, i) => i !== at - 2 && i !== at - 1));
  const cli = parseCli(process.argv.slice(2));
  if (cli.help) {
    log(USAGE);
    return 0;
  }
  if (cli.overhead) return runOverhead(cli.rest);
  const scratchDir = mkdtempSync(join(tmpdir(), 'rxgate-bench-'));
  const cleanup = async (): Promise<void> => {
    await stopAll();
    rmSync(scratchDir, { recursive: true, force: true });
  };
  const interrupt = (signal: NodeJS.Signals): void => {
    log(`\n${signal}: stopping every child process`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  process.once('exit', killAllSync);
  try {
    return await bench(cli, scratchDir);
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  },
);
