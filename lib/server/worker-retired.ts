import type { Worker } from 'node:worker_threads';
import { AggregatorRegistry, collectDefaultMetrics, Registry } from 'prom-client';
import { isThreadMetric, PROCESS_PREFIX, threadMetrics } from './worker-runtime.ts';

/** One metric as prom-client's `getMetricsAsJSON` gives it (what workers send the main thread). */
export interface MetricJson {
  name: string;
  help: string;
  type: string;
  aggregator?: string;
  values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
}

/**
 * The counters and histograms of workers that have exited, added up. The
 * main thread's `/metrics` adds them to the live workers' so a process
 * total never drops when a crashed worker is replaced: Prometheus reads a
 * counter that goes down as a reset (`rate()` then counts the whole value
 * again). Gauges (in flight, connections) are left out: they ended with the
 * worker. A histogram's buckets, sum and count are counters too.
 */
export class RetiredCounts {
  private readonly metrics = new Map<string, { meta: Omit<MetricJson, 'values'>; values: Map<string, MetricJson['values'][number]> }>();

  /** Adds one exited worker's last values. */
  add(list: readonly MetricJson[]): void {
    for (const m of list) {
      if (m.type !== 'counter' && m.type !== 'histogram') continue;
      let kept = this.metrics.get(m.name);
      if (kept === undefined) {
        kept = { meta: { name: m.name, help: m.help, type: m.type, aggregator: 'sum' }, values: new Map() };
        this.metrics.set(m.name, kept);
      }
      for (const v of m.values) {
        const key = `${v.metricName ?? ''}\n${JSON.stringify(v.labels)}`;
        const seen = kept.values.get(key);
        if (seen === undefined) kept.values.set(key, { ...v, labels: { ...v.labels } });
        else seen.value += v.value;
      }
    }
  }

  /** What has been added, in the form `AggregatorRegistry.aggregate` takes. */
  json(): MetricJson[] {
    return [...this.metrics.values()].map(({ meta, values }) => ({ ...meta, values: [...values.values()] }));
  }
}

/**
 * The pool's `/metrics`: every live worker's registry added up
 * (prom-client's `AggregatorRegistry.aggregate()`), plus the counts of
 * workers that crashed and exited (`RetiredCounts`), plus the process
 * metrics once, from the main thread. Each thread's own runtime metrics
 * (event loop, heap, GC) come labelled by `worker` (worker-runtime.ts): a
 * live worker sends its own, the main thread adds its own as `main`.
 */
export class PoolMetrics {
  /** A crashed worker's last counts (`rxgate:final`), until it exits; then they join `retired`. */
  private readonly finals = new Map<Worker, MetricJson[]>();
  private readonly retired = new RetiredCounts();
  /** Scrapes under way: a final joins `retired` only between scrapes, so none counts a worker twice. */
  private scraping = 0;
  /** The process-wide metrics (CPU, RSS, fds) once, from here, and this thread's own: made with the pool, as prom-client's CPU counter counts from its registration (review RJ, L5). */
  private readonly own = new Registry();

  constructor(private readonly isLive: (worker: Worker) => boolean) {
    collectDefaultMetrics({ register: this.own, prefix: PROCESS_PREFIX });
  }

  /**
   * A crashed worker's metrics as its drain ended. Its gauges are dropped
   * here, not only at `retire()`: between its exit and the retire a scrape
   * would otherwise add its last in-flight and connections to the live ones.
   */
  final(worker: Worker, list: readonly MetricJson[]): void {
    // Its runtime metrics end with it: a replacement's start from zero under the same label, as a restarted process's.
    this.finals.set(worker, list.filter((m) => !m.name.startsWith(PROCESS_PREFIX) && m.type !== 'gauge'));
  }

  /** Moves the finals of exited workers into the retired counts (a worker exited). */
  retire(): void {
    if (this.scraping > 0) return;
    for (const [w, last] of this.finals) {
      if (this.isLive(w)) continue;
      this.finals.delete(w);
      this.retired.add(last);
    }
  }

  /** The Prometheus text of the whole process. `ask`: one live worker's metrics; `missed`: told of a live worker left out (no answer in time). */
  async scrape(live: readonly Worker[], ask: (worker: Worker) => Promise<MetricJson[]>, missed?: (worker: Worker, reason: unknown) => void): Promise<string> {
    this.scraping++;
    try {
      const answers = await Promise.allSettled(live.map(ask));
      answers.forEach((a, i) => { if (a.status === 'rejected' && this.isLive(live[i]!)) missed?.(live[i]!, a.reason); });
      const perWorker = answers.flatMap((a, i) => {
        // A worker that crashed and exited meanwhile counts by its last values.
        const list = a.status === 'fulfilled' ? gatewayOnly(a.value) : this.finals.get(live[i]!);
        return list === undefined ? [] : [list];
      });
      const before = [...this.finals].filter(([w]) => !live.includes(w)).map(([, last]) => last);
      const own = (await this.own.getMetricsAsJSON()) as unknown as MetricJson[];
      const all = [...perWorker, ...before, this.retired.json(), own.filter((m) => !isThreadMetric(m.name)), threadMetrics(own, 'main')];
      return await AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]).metrics();
    } finally {
      this.scraping--;
      this.retire();
    }
  }
}

/** A live worker's metrics without the process-wide ones (the main thread's count once); its thread's own stay (labelled by it). */
function gatewayOnly(list: readonly MetricJson[]): MetricJson[] {
  return list.filter((m) => !m.name.startsWith(PROCESS_PREFIX) || isThreadMetric(m.name));
}
