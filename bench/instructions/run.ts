/**
 * Instructions per request, counted by valgrind's callgrind: deterministic
 * where wall-clock and CPU time on a shared VM are not. Starts the upstream
 * (plain Node) and ONE target under callgrind with instrumentation off, warms it
 * up from a client outside valgrind (client.ts: wrk's request), switches it on
 * (`callgrind_control -i on`), sends a fixed number of requests, dumps, and
 * prints the target's user-space instructions per request by part of the
 * process and by function. The kernel's work (send, recv, epoll) is not in
 * it. See docs/performance-instructions.md.
 *
 *   node --import ./bin/loader/register.mjs bench/instructions/run.ts --target bare
 *     [--windows 4] [--requests 1500] (per window) [--warmup 20000] [--concurrency 4] [--top 40]
 *     [--no-jit] (leave JIT code unnamed: node runs without --perf-basic-prof
 *       --no-compact-code-space --interpreted-frames-native-stack)
 *     [--root DIR] (run the target from another checkout, e.g. a worktree, built)
 *     [--out FILE.json] (every function's count, for diff.ts)
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { signToken } from '../token.ts';
import { argValue } from '../args.ts';
import { ChildServer, freePort, waitReady } from '../child.ts';
import { WrkLikeClient } from './client.ts';
import { jitNamer, PARTS, partOf, readProfile, type FunctionCost, type Part, type Profile } from './callgrind.ts';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(HERE, '..', '..');
export const LOADER = join(REPO, 'bin', 'loader', 'register.mjs');

export const TARGETS = ['minimal', 'bare', 'policies', 'full', 'full-hit', 'uws-static'] as const;
export type TargetName = (typeof TARGETS)[number];

export interface InstructionReport {
  target: string;
  root: string;
  /** Requests per window. */
  requests: number;
  /** Each window's instructions per request: all, without the compiler, without the compiler and GC. */
  windows: { failed: number; perRequest: number; steady: number; mutator: number }[];
  warmup: number;
  concurrency: number;
  /** The median window's instructions per request (by all); `parts` and `functions` are that window's. */
  perRequest: number;
  parts: Record<Part, number>;
  /** Every function's self instructions per request, largest first. */
  functions: (FunctionCost & { part: Part; perRequest: number })[];
  statuses: Record<string, number>;
}

export function targetArgs(target: TargetName, root: string, port: number, upstream: string): string[] {
  if (target === 'minimal') {
    return ['--import', LOADER, join(root, 'bench', 'minimal-forwarder.ts'), '--port', String(port), '--upstream', upstream];
  }
  // uws-static: a plain uWS handler answering a full hit's bytes from memory (the floor for a hit, docs/cache-hit.md).
  if (target === 'uws-static') return ['--import', LOADER, join(root, 'bench', 'instructions', 'uws-static.ts'), '--port', String(port)];
  const config = target === 'bare' ? 'bare.yaml' : target === 'policies' ? 'policies.yaml' : 'full.yaml';
  return [join(root, 'bin', 'rxgate.mjs'), '--config', join(root, 'bench', 'configs', config), '--port', String(port)];
}

/** A function's callers: name and the instructions per request spent in calls from there (the callee's inclusive cost). */
type Named = FunctionCost & {
  part: Part; perRequest: number; inclusivePerRequest: number;
  callers?: { name: string; perRequest: number }[];
  /** JavaScript functions: what each calls, with the callee's inclusive cost per request, 24 at most (docs/performance-instructions.md, ninth round). */
  callees?: { name: string; perRequest: number }[];
};

/** Functions whose callers are listed (builtins and runtime calls reached from many places). */
const CALLERS_OF = 60;
/** JavaScript functions (JIT code named from V8's perf map), whose callees are listed. */
const OWN = /^JS:/;

/** One window's profile per request, by part and by function (JIT code by JS function when `name` knows it). */
function summarise(profile: Profile, requests: number, name: (address: string) => string | null): { perRequest: number; parts: Record<Part, number>; functions: Named[] } {
  const merged = new Map<string, Named>();
  const parts = Object.fromEntries(PARTS.map((p) => [p, 0])) as Record<Part, number>;
  const labelOf = (f: FunctionCost, part: Part): string => (part === 'JIT code (JS)' ? (name(f.name) ?? '(unnamed JIT code)') : f.name);
  /** The raw `object\0name` keys merged into each entry (JIT addresses of one JS function). */
  const members = new Map<Named, string[]>();
  for (const f of profile.functions) {
    const part = partOf(f);
    parts[part] += f.ir / requests;
    const label = labelOf(f, part);
    const key = `${part}\0${label}`;
    let entry = merged.get(key);
    if (entry === undefined) {
      entry = { name: label, object: f.object, ir: 0, part, perRequest: 0, inclusive: 0, inclusivePerRequest: 0 };
      merged.set(key, entry);
      members.set(entry, []);
    }
    entry.ir += f.ir;
    entry.perRequest = entry.ir / requests;
    entry.inclusive = (entry.inclusive ?? 0) + (f.inclusive ?? f.ir);
    entry.inclusivePerRequest = (entry.inclusive ?? 0) / requests;
    members.get(entry)!.push(`${f.object}\0${f.name}`);
  }
  const functions = [...merged.values()].sort((a, b) => b.ir - a.ir);
  // The largest functions, and the C entry stub (what calls a runtime function).
  for (const entry of functions.filter((f, i) => i < CALLERS_OF || f.name.startsWith('Builtins_CEntry'))) {
    const by = new Map<string, number>();
    for (const member of members.get(entry) ?? []) {
      for (const [caller, ir] of profile.callers.get(member) ?? []) {
        const [object = '', fn = ''] = caller.split('\0');
        const f = { object, name: fn, ir: 0 };
        const label = labelOf(f, partOf(f));
        by.set(label, (by.get(label) ?? 0) + ir);
      }
    }
    entry.callers = [...by].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([n, ir]) => ({ name: n, perRequest: ir / requests }));
  }
  // Callees of JavaScript functions: the call edges read the other way round.
  const entryOf = new Map<string, Named>();
  for (const [entry, keys] of members) if (OWN.test(entry.name)) for (const k of keys) entryOf.set(k, entry);
  const callees = new Map<Named, Map<string, number>>();
  for (const [calleeKey, by] of profile.callers) {
    const [object = '', fn = ''] = calleeKey.split('\0');
    const f = { object, name: fn, ir: 0 };
    const label = labelOf(f, partOf(f));
    for (const [callerKey, ir] of by) {
      const entry = entryOf.get(callerKey);
      if (entry === undefined) continue;
      let m = callees.get(entry);
      if (m === undefined) callees.set(entry, (m = new Map()));
      m.set(label, (m.get(label) ?? 0) + ir);
    }
  }
  for (const [entry, m] of callees) entry.callees = [...m].sort((a, b) => b[1] - a[1]).slice(0, 24).map(([n, ir]) => ({ name: n, perRequest: ir / requests }));
  return { perRequest: profile.total / requests, parts, functions };
}

function control(args: string[]): string {
  return execFileSync('callgrind_control', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export async function countInstructions(options: {
  target: TargetName;
  root: string;
  requests: number;
  windows: number;
  warmup: number;
  concurrency: number;
  jit: boolean;
  log: (line: string) => void;
}): Promise<InstructionReport> {
  const { target, root, requests, windows, warmup, concurrency, jit, log } = options;
  const scratch = mkdtempSync(join(tmpdir(), 'rxgate-instr-'));
  const upstreamPort = await freePort();
  const upstreamOrigin = `http://127.0.0.1:${upstreamPort}`;
  const upstream = new ChildServer('upstream', process.execPath, ['--import', LOADER, join(REPO, 'bench', 'upstream.ts'), '--port', String(upstreamPort)]);
  let child: ChildServer | null = null;
  let client: WrkLikeClient | null = null;
  try {
    await waitReady(upstream, { origin: upstreamOrigin, path: '/ready', headers: {}, timeoutMs: 20_000 });
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const secret = randomBytes(32).toString('hex');
    const headers = { authorization: `Bearer ${await signToken(secret)}` };
    const nodeFlags = jit ? ['--perf-basic-prof', '--no-compact-code-space', '--interpreted-frames-native-stack'] : [];
    const valgrind = [
      '--tool=callgrind',
      '--smc-check=all-non-file',
      '--instr-atstart=no',
      `--callgrind-out-file=${join(scratch, 'callgrind.out')}`,
      process.execPath,
      ...nodeFlags,
      ...targetArgs(target, root, port, upstreamOrigin),
    ];
    const env = { BENCH_UPSTREAM: upstreamOrigin, BENCH_JWT_SECRET: secret, NODE_ENV: 'production' };
    const started = performance.now();
    child = new ChildServer(target, 'valgrind', valgrind, env, root, 64 * 1024);
    await waitReady(child, { origin, path: '/bench?r=ready', headers, timeoutMs: 300_000 });
    log(`${target}: started under callgrind in ${((performance.now() - started) / 1000).toFixed(0)} s`);
    client = await WrkLikeClient.open(port, concurrency, headers);
    const nonce = randomBytes(4).toString('hex');
    const path = target === 'full-hit' ? () => '/bench?r=hit' : (i: number) => `/bench?r=${nonce}-${i}`;
    const warmStatuses: Record<string, number> = {};
    let t = performance.now();
    await client.drive(path, warmup, warmStatuses);
    log(`${target}: ${warmup} warm-up requests in ${((performance.now() - t) / 1000).toFixed(1)} s ${JSON.stringify(warmStatuses)}`);
    const pid = String(child.pid);
    control(['-i', 'on', pid]);
    const statuses: Record<string, number> = {};
    t = performance.now();
    // Windows of `requests` each, dumped one by one (a dump zeroes the counters).
    const failed: number[] = [];
    for (let w = 0; w < windows; w++) {
      const own: Record<string, number> = {};
      await client.drive((i) => path(warmup + w * requests + i), requests, own);
      control(['-d', pid]);
      for (const [status, count] of Object.entries(own)) statuses[status] = (statuses[status] ?? 0) + count;
      failed.push(requests - (own['200'] ?? 0));
    }
    control(['-i', 'off', pid]);
    log(`${target}: ${windows} × ${requests} counted requests in ${((performance.now() - t) / 1000).toFixed(1)} s ${JSON.stringify(statuses)}`);
    const dumps = readdirSync(scratch)
      .filter((f) => /^callgrind\.out\.\d+$/.test(f))
      .sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop()));
    if (dumps.length !== windows) throw new Error(`expected ${windows} callgrind dumps in ${scratch}: ${readdirSync(scratch).join(', ')}\n${child.output(30)}`);
    const named = jit ? jitNamer(`/tmp/perf-${pid}.map`) : () => null;
    // Paths without the checkout's root, so runs from two worktrees line up in diff.ts.
    const rootUrl = `file://${root}/`;
    const name = (address: string): string | null => named(address)?.replaceAll(rootUrl, '').replaceAll(`${root}/`, '') ?? null;
    const counted = dumps.map((dump) => summarise(readProfile(join(scratch, dump)), requests, name));
    // A window with an answer other than 200 ran another path (under callgrind a
    // major GC can take seconds, and the policies' 5 s per-attempt timeout fires):
    // left out of the median unless every window had one.
    const clean = counted.filter((_, w) => failed[w] === 0);
    // The median window by total: one that caught a compile burst or a major GC is at the top.
    const byTotal = [...(clean.length > 0 ? clean : counted)].sort((a, b) => a.perRequest - b.perRequest);
    const median = byTotal[Math.floor((byTotal.length - 1) / 2)] as (typeof counted)[number];
    const windowFigures = counted.map((c, w) => ({ failed: failed[w] as number, perRequest: c.perRequest, steady: c.perRequest - c.parts['V8 compiler'], mutator: c.perRequest - c.parts['V8 compiler'] - c.parts['V8 GC'] }));
    if (jit) rmSync(`/tmp/perf-${pid}.map`, { force: true });
    return { target, root, requests, windows: windowFigures, warmup, concurrency, perRequest: median.perRequest, parts: median.parts, functions: median.functions, statuses };
  } finally {
    client?.close();
    await child?.stop();
    await upstream.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Instructions per request without V8's compilers: TurboFan and Maglev still
 * compile now and then after the warm-up, in bursts that land in one window
 * and not the next (+12,000 per request in one of two bare runs).
 */
export function steady(r: InstructionReport): number {
  return r.perRequest - r.parts['V8 compiler'];
}

/**
 * Without the compiler and the GC: a window holds a few scavenges, so one
 * more or less moves the GC's share by ~1,000 per request; the JavaScript's
 * own work repeats within ~1%.
 */
export function mutator(r: InstructionReport): number {
  return steady(r) - r.parts['V8 GC'];
}

export function formatReport(r: InstructionReport, top: number): string {
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  const lines = [
    `${r.target}: ${n(r.perRequest)} instructions per request (median of ${r.windows.length} windows of ${r.requests} requests after ${r.warmup} warm-up, concurrency ${r.concurrency}; statuses ${JSON.stringify(r.statuses)})`,
    `${r.target}: ${n(steady(r))} without the compiler, ${n(mutator(r))} without the compiler and GC (median window)`,
    `${r.target}: windows ${r.windows.map((w) => `${n(w.perRequest)} / ${n(w.steady)} / ${n(w.mutator)}${w.failed > 0 ? ` (${w.failed} not 200: left out)` : ''}`).join(', ')} (all / no compiler / no compiler, no GC)`,
    '',
    '| part | instr/request | share |',
    '|---|---:|---:|',
    ...PARTS.filter((p) => r.parts[p] >= 1).map((p) => `| ${p} | ${n(r.parts[p])} | ${((100 * r.parts[p]) / r.perRequest).toFixed(1)}% |`),
    '',
    `| function (top ${top}, self) | part | instr/request |`,
    '|---|---|---:|',
    ...r.functions.slice(0, top).map((f) => `| \`${f.name.slice(0, 110)}\` | ${f.part} | ${n(f.perRequest)} |`),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const target = argValue('target') as TargetName | undefined;
  if (target === undefined || !TARGETS.includes(target)) throw new TypeError(`--target must be one of ${TARGETS.join(', ')}`);
  const num = (name: string, fallback: number): number => {
    const v = Number(argValue(name) ?? fallback);
    if (!Number.isInteger(v) || v <= 0) throw new TypeError(`--${name} must be a positive integer`);
    return v;
  };
  const report = await countInstructions({
    target,
    root: resolve(argValue('root') ?? REPO),
    requests: num('requests', 1500),
    windows: num('windows', 4),
    warmup: num('warmup', 20000),
    concurrency: num('concurrency', 4),
    jit: !process.argv.includes('--no-jit'),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const out = argValue('out');
  if (out !== undefined) writeFileSync(out, `${JSON.stringify(report)}\n`);
  process.stdout.write(`${formatReport(report, num('top', 40))}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main();
}
