/**
 * The GC table and issue 10's targets, checked against one run's medians:
 * every ratio compares targets measured in the same interleaved run.
 */
import type { RoundSample, Summary, TargetOutcome } from './report.ts';
import { median } from './report.ts';

/** The longest pause a full-miss run may show (issue 10, target 4). */
const MAX_PAUSE_MS = 5;

export interface GcSummary {
  /** Scavenges per 1,000 responses (median over rounds). */
  scavengesPerK: number;
  /** Mark-compacts per round (median). */
  markCompacts: number;
  /** Longest mark-compact over all rounds, ms. */
  maxMarkCompactMs: number;
  /** Longest collection of any kind over all rounds, ms. */
  maxPauseMs: number;
  /** Time in GC as a share of the round's wall time (median), %. */
  gcSharePct: number;
  /** Heap used at the end of the last round, bytes. */
  heapUsed: number;
}

export function summarizeGc(samples: readonly RoundSample[]): GcSummary | null {
  const withGc = samples.filter((s) => s.gc);
  if (withGc.length === 0) return null;
  const gc = (s: RoundSample) => s.gc!;
  return {
    scavengesPerK: median(withGc.map((s) => (gc(s).scavenges * 1000) / Math.max(1, s.requests))),
    markCompacts: median(withGc.map((s) => gc(s).markCompacts)),
    maxMarkCompactMs: Math.max(...withGc.map((s) => gc(s).maxMarkCompactMs)),
    maxPauseMs: Math.max(...withGc.map((s) => gc(s).maxPauseMs)),
    gcSharePct: median(withGc.map((s) => (gc(s).pauseMs / 10) / Math.max(0.001, s.durationSec))),
    heapUsed: gc(withGc[withGc.length - 1]!).heapUsed,
  };
}

export function gcTable(targets: readonly TargetOutcome[]): string[] {
  const rows: string[] = [];
  for (const t of targets) {
    const g = summarizeGc(t.samples);
    if (!g) continue;
    if (t.name === 'workers') {
      rows.push('| workers | — | — | — | — | — | — (the probe sees the main thread, which serves nothing with `--workers N`) |');
      continue;
    }
    rows.push(
      `| ${t.name} | ${g.scavengesPerK.toFixed(1)} | ${g.markCompacts} | ${g.maxMarkCompactMs.toFixed(1)} ms | ` +
        `${g.maxPauseMs.toFixed(1)} ms | ${g.gcSharePct.toFixed(1)}% | ${(g.heapUsed / 2 ** 20).toFixed(1)} MiB |`,
    );
  }
  if (rows.length === 0) return [];
  return [
    '**Garbage collection** (main thread of each Node target, from `perf_hooks` `gc` entries; `bench/gc-probe.mjs`). ' +
      'Pauses are wall time: on a shared machine a collection that is preempted looks longer than it is.',
    '',
    '| target | scavenges / 1k req | mark-compacts / round | longest mark-compact | longest pause | time in GC | heap used after |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...rows,
  ];
}

type Verdict = 'met' | 'missed' | 'not measured' | 'reported';

interface Goal {
  goal: string;
  verdict: Verdict;
  figure: string;
}

const x = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;

/** Issue 10's targets, each met, missed or not measured in this run. */
export function goals(targets: readonly TargetOutcome[], summaries: ReadonlyMap<string, Summary | null>): string[] {
  const get = (name: string): Summary | null => summaries.get(name) ?? null;
  const cpu = (s: Summary | null): number | null => s?.cpuUsPerRequest ?? null;
  const floor = get('minimal');
  const out: Goal[] = [];
  const check = (goal: string, need: (Summary | null)[], test: () => [boolean, string]): void => {
    if (need.some((s) => s === null || cpu(s) === null)) {
      out.push({ goal, verdict: 'not measured', figure: '' });
      return;
    }
    const [ok, figure] = test();
    out.push({ goal, verdict: ok ? 'met' : 'missed', figure });
  };
  const bare = get('bare');
  const policies = get('policies');
  const full = get('full');
  const hit = get('full-hit');
  const fastify = get('fastify');
  const nginx = get('nginx');
  const workers = get('workers');
  check('2a. bare CPU µs/req ≤ 1.2× the floor', [bare, floor], () => {
    const r = cpu(bare)! / cpu(floor)!;
    return [r <= 1.2, `${cpu(bare)!.toFixed(1)} vs ${cpu(floor)!.toFixed(1)} µs (${r.toFixed(2)}×)`];
  });
  check('2b. bare req/s ≥ 0.85× the floor', [bare, floor], () =>
    [bare!.rps >= 0.85 * floor!.rps, `${Math.round(bare!.rps)} vs ${Math.round(floor!.rps)} (${x(bare!.rps, floor!.rps)})`]);
  check('2c. bare req/s ≥ 2.5× fastify, with a lower p99', [bare, fastify], () =>
    [bare!.rps >= 2.5 * fastify!.rps && bare!.p99Ms < fastify!.p99Ms,
      `${x(bare!.rps, fastify!.rps)}; p99 ${bare!.p99Ms.toFixed(1)} vs ${fastify!.p99Ms.toFixed(1)} ms`]);
  check('3. policies route CPU µs/req ≤ 1.3× the floor', [policies, floor], () => {
    const r = cpu(policies)! / cpu(floor)!;
    return [r <= 1.3, `${cpu(policies)!.toFixed(1)} µs (${r.toFixed(2)}×)`];
  });
  check('4a. cache full miss CPU µs/req ≤ 1.8× the floor', [full, floor], () => {
    const r = cpu(full)! / cpu(floor)!;
    return [r <= 1.8, `${cpu(full)!.toFixed(1)} µs (${r.toFixed(2)}×)`];
  });
  check('4b. cache full miss p99 ≤ 2× bare p99', [full, bare], () =>
    [full!.p99Ms <= 2 * bare!.p99Ms, `${full!.p99Ms.toFixed(1)} vs ${bare!.p99Ms.toFixed(1)} ms (${x(full!.p99Ms, bare!.p99Ms)})`]);
  const fullGc = summarizeGc(targets.find((t) => t.name === 'full')?.samples ?? []);
  out.push(fullGc === null
    ? { goal: `4c. no GC pause over ${MAX_PAUSE_MS} ms in a full-miss run`, verdict: 'not measured', figure: '' }
    : {
      goal: `4c. no GC pause over ${MAX_PAUSE_MS} ms in a full-miss run`,
      verdict: fullGc.maxPauseMs <= MAX_PAUSE_MS ? 'met' : 'missed',
      figure: `longest ${fullGc.maxPauseMs.toFixed(1)} ms; ${fullGc.markCompacts} mark-compact(s) per round, longest ${fullGc.maxMarkCompactMs.toFixed(1)} ms`,
    });
  check('5. cache hit req/s ≥ nginx proxy_pass', [hit, nginx], () =>
    [hit!.rps >= nginx!.rps, `${Math.round(hit!.rps)} vs ${Math.round(nginx!.rps)} (${x(hit!.rps, nginx!.rps)})`]);
  const scaling = workers !== null && bare !== null ? workers.rps / bare.rps : null;
  out.push({
    goal: '6. `--workers N` vs one thread (`bare`): scaling factor',
    verdict: scaling === null ? 'not measured' : 'reported',
    figure: scaling === null ? '' : `${scaling.toFixed(2)}× req/s, CPU ${cpu(workers)?.toFixed(1) ?? '—'} vs ${cpu(bare)?.toFixed(1) ?? '—'} µs/req (reported, no threshold)`,
  });
  return [
    '**Issue 10 targets** (this run only; `the floor` is `minimal`)',
    '',
    '| target | verdict | figure |',
    '|---|---|---|',
    ...out.map((g) => `| ${g.goal} | ${g.verdict} | ${g.figure} |`),
  ];
}
