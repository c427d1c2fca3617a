import { describe, expect, it } from 'vitest';
import type { MetricJson } from '../../lib/server/worker-retired.ts';
import { threadMetrics, workerMetrics } from '../../lib/server/worker-runtime.ts';

/**
 * A thread's runtime metrics under `--workers` (audit A16, F4): labelled by
 * its worker, the process-wide ones left to the main thread, and the lag
 * statistics of a window with no sample left out, where prom-client reads a
 * NaN mean and a min of 2^63 ns (9223372036.85 s) at the first scrape.
 */
const gauge = (name: string, value: number): MetricJson => ({ name: `rxgate_process_${name}`, help: name, type: 'gauge', aggregator: 'average', values: [{ labels: {}, value }] });
const registry = (mean: number, min: number): MetricJson[] => [
  gauge('nodejs_eventloop_lag_seconds', 0.001),
  gauge('nodejs_eventloop_lag_mean_seconds', mean),
  gauge('nodejs_eventloop_lag_min_seconds', min),
  gauge('nodejs_eventloop_lag_p99_seconds', 0),
  gauge('nodejs_heap_size_used_bytes', 5e6),
  gauge('process_resident_memory_bytes', 9e7),
  gauge('nodejs_version_info', 1),
  { name: 'rxgate_requests_total', help: 'r', type: 'counter', values: [{ labels: { route: 'a', status: '2xx' }, value: 3 }] },
];
const names = (list: readonly MetricJson[]): string[] => list.map((m) => m.name.replace('rxgate_process_', ''));

describe('a worker thread\'s runtime metrics', () => {
  it('are its event loop and heap, labelled by its worker; the process\'s and the gateway\'s are not', () => {
    const own = threadMetrics(registry(0.0012, 0.0009), '1');
    expect(names(own)).toEqual(['nodejs_eventloop_lag_seconds', 'nodejs_eventloop_lag_mean_seconds', 'nodejs_eventloop_lag_min_seconds', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_heap_size_used_bytes']);
    expect(own.every((m) => m.values.every((v) => v.labels['worker'] === '1'))).toBe(true);
  });

  it('leave out the lag statistics of a window with no sample (NaN mean, 2^63 ns min), keeping the rest', () => {
    expect(names(threadMetrics(registry(Number.NaN, 9223372036.854776), '0'))).toEqual(['nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']);
  });

  it('are left out of a worker\'s answer once it drains after a crash (its replacement has the slot), the gateway\'s kept', () => {
    expect(names(workerMetrics(registry(0.001, 0.001), null))).toEqual(['process_resident_memory_bytes', 'nodejs_version_info', 'rxgate_requests_total']);
    expect(names(workerMetrics(registry(0.001, 0.001), '0'))).toContain('nodejs_heap_size_used_bytes');
  });
});
