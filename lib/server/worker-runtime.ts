import type { MetricJson } from './worker-retired.ts';

/** prom-client's default metrics, as GatewayMetrics and the pool's main thread register them. */
export const PROCESS_PREFIX = 'rxgate_process_';

/** The event loop's lag statistics over the window since the last scrape (prom-client's monitorEventLoopDelay histogram). */
const LAG_STATS = /^rxgate_process_nodejs_eventloop_lag_(?:min|max|mean|stddev|p50|p90|p99)_seconds$/;

/**
 * Whether a default metric is one thread's own: its event loop (lag,
 * active handles, requests and resources), its V8 heap and its GCs, all
 * `nodejs_*` but the version. The rest (`process_*`: CPU, RSS, fds, start
 * time) are the process's, which every thread would report alike.
 */
export function isThreadMetric(name: string): boolean {
  return name.startsWith(`${PROCESS_PREFIX}nodejs_`) && name !== `${PROCESS_PREFIX}nodejs_version_info`;
}

/**
 * One thread's own runtime metrics under `--workers`, each series labelled
 * `worker` (a slot, or `main`), so /metrics shows each thread, never a sum
 * of them. The lag statistics of a window with no sample are left out: the
 * histogram then reads a mean of NaN and a min of 2^63 ns (9223372036.85 s),
 * as prom-client reports it at the first scrape after start or two scrapes
 * within its 10 ms resolution.
 */
export function threadMetrics(list: readonly MetricJson[], worker: string): MetricJson[] {
  const own = list.filter((m) => isThreadMetric(m.name));
  const mean = own.find((m) => m.name === `${PROCESS_PREFIX}nodejs_eventloop_lag_mean_seconds`);
  const unsampled = mean?.values.some((v) => Number.isNaN(v.value)) ?? false;
  return own.flatMap((m) => (unsampled && LAG_STATS.test(m.name) ? [] : [{
    ...m, values: m.values.map((v) => ({ ...v, labels: { ...v.labels, worker } })),
  }]));
}

/** A worker's answer to `rxgate:metrics`: its registry with its thread's runtime metrics labelled `worker` (null: left out). */
export function workerMetrics(list: readonly MetricJson[], worker: string | null): MetricJson[] {
  const rest = list.filter((m) => !isThreadMetric(m.name));
  return worker === null ? rest : [...rest, ...threadMetrics(list, worker)];
}
