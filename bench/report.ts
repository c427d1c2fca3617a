/** Medians across rounds, the markdown table, machine info. */
import { cpus, availableParallelism, loadavg, release, totalmem, platform, arch } from 'node:os';
import type { GcStats } from './child.ts';
import { gcTable, goals } from './goals.ts';
import type { LoadResult } from './load.ts';

export interface RoundSample extends LoadResult {
  round: number;
  /** CPU used by the target's process tree during the round, % of one core. */
  targetCpu: number | null;
  /** CPU used by the upstream process during the round, % of one core. */
  upstreamCpu: number | null;
  /** Collections in the target's main thread during the round (Node targets only). */
  gc?: GcStats | null;
}

export type TargetStatus = 'ok' | 'skipped' | 'failed to start' | 'not supported' | 'failed';

export interface TargetOutcome {
  name: string;
  label: string;
  status: TargetStatus;
  /** Why it was skipped or failed, or a warning about the probe. */
  note?: string;
  /** The tail of its output when it failed. */
  output?: string;
  /** The readiness probe's answer. */
  probe?: { status: number; bodyBytes: number; cache?: string };
  samples: RoundSample[];
  /** RSS of the target's main process after the last round. */
  rssBytes?: number | null;
}

export interface Machine {
  cpu: string;
  cores: number;
  memory: string;
  os: string;
  node: string;
  loadAverage: string;
}

export interface Settings {
  generator: string;
  connections: number;
  durationSec: number;
  rounds: number;
  warmupSec: number;
  /** Unmeasured load right before each measured round, seconds. */
  roundWarmupSec: number;
  quick: boolean;
  workers: number;
  payloadBytes: number;
  nginx: string | null;
}

export interface RunReport {
  date: string;
  machine: Machine;
  settings: Settings;
  targets: TargetOutcome[];
}

export interface Summary {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  socketErrors: number;
  non2xx: number;
  targetCpu: number | null;
  upstreamCpu: number | null;
  /** The target's CPU time per request, µs (median over rounds): the most stable figure on a shared machine. */
  cpuUsPerRequest: number | null;
}

export function machineInfo(): Machine {
  const [one, five] = loadavg();
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    os: `${platform()} ${release()} ${arch()}`,
    node: process.version,
    loadAverage: `${one?.toFixed(2)} (1 min), ${five?.toFixed(2)} (5 min) at start`,
  };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length > 0 ? median(known) : null;
}

/** µs of target CPU per response in one round (CPU % of one core × 10⁴ / req/s). */
export function cpuPerRequest(s: RoundSample): number | null {
  return s.targetCpu === null || s.rps <= 0 ? null : (s.targetCpu * 10_000) / s.rps;
}

export function summarize(samples: readonly RoundSample[]): Summary | null {
  if (samples.length === 0) return null;
  return {
    rps: median(samples.map((s) => s.rps)),
    p50Ms: median(samples.map((s) => s.p50Ms)),
    p99Ms: median(samples.map((s) => s.p99Ms)),
    socketErrors: samples.reduce((sum, s) => sum + s.socketErrors, 0),
    non2xx: samples.reduce((sum, s) => sum + s.non2xx, 0),
    targetCpu: medianOrNull(samples.map((s) => s.targetCpu)),
    upstreamCpu: medianOrNull(samples.map((s) => s.upstreamCpu)),
    cpuUsPerRequest: medianOrNull(samples.map(cpuPerRequest)),
  };
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function ms(value: number): string {
  if (!Number.isFinite(value)) return '—';
  return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(1)} ms`;
}

function ratio(value: number, base: number | undefined): string {
  if (base === undefined || !Number.isFinite(base) || base <= 0) return '—';
  return `${Math.round((value / base) * 100)}%`;
}

function us(value: number | null): string {
  return value === null ? '—' : value.toFixed(1);
}

function times(value: number | null, base: number | null): string {
  return value === null || base === null || base <= 0 ? '—' : `${(value / base).toFixed(2)}×`;
}

function pct(value: number | null): string {
  return value === null ? '—' : `${Math.round(value)}%`;
}

export function markdown(report: RunReport): string {
  const { machine: m, settings: s } = report;
  const summaries = new Map(report.targets.map((t) => [t.name, t.status === 'ok' ? summarize(t.samples) : null]));
  const direct = summaries.get('direct')?.rps;
  const minimal = summaries.get('minimal')?.rps;
  const minimalCpu = summaries.get('minimal')?.cpuUsPerRequest ?? null;
  const lines: string[] = [];
  lines.push(`### Results (${report.date})`, '');
  lines.push(
    '| target | req/s (median) | p50 | p99 | socket errors / non-2xx | vs direct | vs minimal | CPU µs/req | CPU vs minimal | target CPU | upstream CPU |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const t of report.targets) {
    const sum = summaries.get(t.name);
    if (!sum) {
      lines.push(`| ${t.name} | ${t.status} | | | | | | | | | |`);
      continue;
    }
    const flagged = t.note?.includes('NOT') ? ' (see note)' : '';
    lines.push(
      `| ${t.name}${flagged} | ${int.format(sum.rps)} | ${ms(sum.p50Ms)} | ${ms(sum.p99Ms)} | ${sum.socketErrors} / ${sum.non2xx} | ` +
        `${ratio(sum.rps, direct)} | ${ratio(sum.rps, minimal)} | ${us(sum.cpuUsPerRequest)} | ${times(sum.cpuUsPerRequest, minimalCpu)} | ${pct(sum.targetCpu)} | ${pct(sum.upstreamCpu)} |`,
    );
  }
  lines.push('');
  lines.push(
    `Medians of ${s.rounds} interleaved round(s) of ${s.durationSec} s per target` +
      `${s.warmupSec > 0 ? ` after a ${s.warmupSec} s warmup each` : ', no warmup'}` +
      `${s.roundWarmupSec > 0 ? `, each round preceded by ${s.roundWarmupSec} s of unmeasured load on its target` : ''}` +
      `; ${s.connections} keep-alive connections; GET, ~${s.payloadBytes} B JSON answers; load generator: ${s.generator}. ` +
      'CPU columns: CPU time of the target process tree and of the upstream during a round, in % of one core (median); ' +
      'CPU µs/req is the target\'s CPU time per response (median over rounds), and its ratio to the minimal forwarder\'s.',
  );
  const gc = gcTable(report.targets);
  if (gc.length > 0) lines.push('', ...gc);
  if (!s.quick) lines.push('', ...goals(report.targets, summaries));
  if (s.quick) lines.push('', '**Quick run** (`--quick`): a smoke test of the harness, not a measurement.');
  lines.push('', '**Targets**', '');
  for (const t of report.targets) {
    let line = `- \`${t.name}\`: ${t.label}`;
    if (t.status !== 'ok') line += `. **${t.status}**${t.note ? `: ${t.note}` : ''}`;
    else if (t.note) line += `. Note: ${t.note}`;
    lines.push(line);
  }
  const measured = report.targets.filter((t) => t.samples.length > 0);
  if (measured.length > 0 && s.rounds > 1) {
    lines.push('', '**req/s per round**', '');
    for (const t of measured) lines.push(`- \`${t.name}\`: ${t.samples.map((x) => int.format(x.rps)).join(', ')}`);
    // A target's rounds drifting while the floor's hold is read here first (docs/performance.md, thirteenth round).
    const cpu = measured.filter((t) => t.samples.some((x) => cpuPerRequest(x) !== null));
    if (cpu.length > 0) {
      lines.push('', '**CPU µs/req per round** (and the ratio to the floor\'s in the same round)', '');
      const floor = report.targets.find((t) => t.name === 'minimal')?.samples;
      for (const t of cpu) {
        lines.push(`- \`${t.name}\`: ${t.samples.map((x) => {
          const own = cpuPerRequest(x);
          const same = floor?.find((f) => f.round === x.round);
          const base = same === undefined ? null : cpuPerRequest(same);
          return t.name === 'minimal' || own === null || base === null ? us(own) : `${us(own)} (${times(own, base)})`;
        }).join(', ')}`);
      }
    }
  }
  lines.push('', '**Machine**', '');
  lines.push(
    `- CPU: ${m.cpu}, ${m.cores} cores, shared by the load generator, the target and the upstream (nothing pinned)`,
    `- Memory: ${m.memory}; OS: ${m.os}`,
    `- Node ${m.node}; ${s.generator}${s.nginx ? `; ${s.nginx}` : ''}`,
    `- Load average: ${m.loadAverage}`,
    `- Date: ${report.date}`,
  );
  const failures = report.targets.filter((t) => t.output);
  for (const t of failures) {
    lines.push('', `<details><summary>${t.name}: ${t.status} — output</summary>`, '', '```', t.output ?? '', '```', '', '</details>');
  }
  return `${lines.join('\n')}\n`;
}
