import type { Registry } from 'prom-client';

/** One value of a metric, in prom-client's `getMetricsAsJSON()` shape. */
export interface Sample {
  labels: Record<string, string | number>;
  value: number;
  /** For a histogram's `_bucket`, `_sum` and `_count` lines. */
  metricName?: string;
}

export interface ScrapedOptions {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  /** How `AggregatorRegistry.aggregate()` merges workers' values. @default 'sum' */
  aggregator?: 'sum' | 'max' | 'min' | 'average' | 'first' | 'omit';
  /** Appends the current values to `out`; runs at scrape time only. */
  collect(out: Sample[]): void;
}

/**
 * A metric whose values prom-client reads at scrape time from plain numbers
 * the hot path keeps (array slots, `Float64Array` buckets): a request pays
 * an increment, never a label hash. The registry renders it exactly like
 * its own counters, gauges and histograms.
 */
export function registerScraped(registry: Registry, options: ScrapedOptions): void {
  const { name, help, type, collect } = options;
  const aggregator = options.aggregator ?? 'sum';
  const metric = {
    name, help, type, aggregator,
    get() {
      const values: Sample[] = [];
      collect(values);
      return { name, help, type, aggregator, values };
    },
    reset() {},
  };
  // prom-client duck-types what it registers.
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}

/**
 * Appends a histogram's samples: cumulative `_bucket` lines (`le` each of
 * `bounds`, then `+Inf`), `_sum` and `_count`. `counts[i]` holds the
 * observations in bucket `i` alone (the last slot: above every bound).
 */
export function histogramSamples(out: Sample[], name: string, labels: Record<string, string>, bounds: readonly number[], counts: Float64Array, sum: number): void {
  let cumulative = 0;
  for (let i = 0; i < bounds.length; i++) {
    cumulative += counts[i]!;
    out.push({ labels: { le: bounds[i]!, ...labels }, value: cumulative, metricName: `${name}_bucket` });
  }
  cumulative += counts[bounds.length]!;
  out.push({ labels: { le: '+Inf', ...labels }, value: cumulative, metricName: `${name}_bucket` });
  out.push({ labels, value: sum, metricName: `${name}_sum` });
  out.push({ labels, value: cumulative, metricName: `${name}_count` });
}

/** The bucket of `value` among ascending `bounds` (`le` semantics); `bounds.length` when above all. */
export function bucketOf(bounds: readonly number[], value: number): number {
  let i = 0;
  while (i < bounds.length && value > bounds[i]!) i++;
  return i;
}
