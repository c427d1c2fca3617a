import fc from 'fast-check';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { mergeWindows, quantile, RouteSeries, SERIES_SECONDS, summarize } from '../../lib/admin/series.ts';
import { GatewayTimeoutError } from '../../lib/errors.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { RequestMetrics } from '../../lib/observe/request-metrics.ts';
import { bucketOf, histogramSamples, registerScraped } from '../../lib/observe/scraped.ts';
import { RetiredCounts } from '../../lib/server/worker-retired.ts';

const BOUNDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

describe('metrics read at scrape time', () => {
  it('renders a histogram of plain bucket counts exactly as prom-client renders its own', async () => {
    const values = [0.0005, 0.001, 0.003, 0.2, 0.2, 7, 42];
    const theirs = new Registry();
    const h = new Histogram({ name: 'x_seconds', help: 'h', labelNames: ['route'] as const, buckets: BOUNDS, registers: [theirs] });
    for (const v of values) h.observe({ route: 'r' }, v);

    const ours = new Registry();
    const counts = new Float64Array(BOUNDS.length + 1);
    let sum = 0;
    for (const v of values) {
      counts[bucketOf(BOUNDS, v)]!++;
      sum += v;
    }
    registerScraped(ours, { name: 'x_seconds', help: 'h', type: 'histogram', collect: (out) => histogramSamples(out, 'x_seconds', { route: 'r' }, BOUNDS, counts, sum) });
    expect(await ours.metrics()).toBe(await theirs.metrics());
  });

  it('counts answers by route and status class, their durations, and errors by code', async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const answers = new RequestMetrics(metrics);
    const t = performance.now();
    answers.answered('a', 200, t, null);
    answers.answered('a', 204, t, null);
    answers.answered('b', 200, t, null);
    answers.answered('a', 504, t - 20_000, new GatewayTimeoutError('slow'));
    const text = await metrics.registry.metrics();
    expect(text).toContain('rxgate_requests_total{route="a",status="2xx"} 2\n');
    expect(text).toContain('rxgate_requests_total{route="a",status="5xx"} 1\n');
    expect(text).toContain('rxgate_requests_total{route="b",status="2xx"} 1\n');
    expect(text).not.toContain('status="4xx"');
    expect(text).toContain('rxgate_request_duration_seconds_count{route="a"} 3\n');
    // The 20 s answer is above every bound: only +Inf holds it.
    expect(text).toContain('rxgate_request_duration_seconds_bucket{le="10",route="a"} 2\n');
    expect(text).toContain('rxgate_request_duration_seconds_bucket{le="+Inf",route="a"} 3\n');
    expect(text).toContain('rxgate_errors_total{code="GATEWAY_TIMEOUT"} 1\n');
  });

  it('counts reloads and retry-budget refusals from events', async () => {
    const { GatewayEvents } = await import('../../lib/observe/events.ts');
    const { observe } = await import('../../lib/observe/wire.ts');
    const { silentLogger } = await import('../../lib/observe/log.ts');
    const events = new GatewayEvents();
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    observe(events, metrics, silentLogger);
    events.emit('reload', { outcome: 'applied', trigger: 'signal' });
    events.emit('reload', { outcome: 'refused', trigger: 'admin', message: 'bad' });
    events.emit('retryRefused', { service: 'users', route: 'r', requestId: '1' });
    const text = await metrics.registry.metrics();
    expect(text).toContain('rxgate_reloads_total{outcome="applied",trigger="signal"} 1\n');
    expect(text).toContain('rxgate_reloads_total{outcome="refused",trigger="admin"} 1\n');
    expect(text).toContain('rxgate_retry_budget_refused_total{service="users"} 1\n');
  });
});

describe('RouteSeries', () => {
  it('keeps one slot per second on the clock it is given, oldest first', () => {
    const s = new RouteSeries(BOUNDS);
    s.record(500, 0, false);
    s.record(1200, 1, true);
    s.record(1900, 1, false);
    const w = s.window(2500, 3);
    expect(w.requests).toEqual([1, 2, 0]);
    expect(w.errors).toEqual([0, 1, 0]);
    expect(w.buckets[1]![1]).toBe(2);
  });

  it('forgets seconds older than its length, across the ring\'s wrap', () => {
    const s = new RouteSeries(BOUNDS);
    s.record(3_000, 0, false);
    s.record((SERIES_SECONDS + 3) * 1000, 0, false); // the same slot, one lap later
    const w = s.window((SERIES_SECONDS + 3) * 1000, SERIES_SECONDS);
    expect(w.requests.reduce((a, b) => a + b, 0)).toBe(1);
    expect(w.requests.at(-1)).toBe(1);
    expect(s.window(10_000_000, 10).requests).toEqual(new Array(10).fill(0));
  });

  it('holds exactly the answers of the last N seconds (against a list of timestamps)', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: 0, max: 2_000_000 }), { maxLength: 60 }),
      fc.integer({ min: 1, max: SERIES_SECONDS }),
      fc.integer({ min: 0, max: 1_000_000 }),
      (raw, n, extra) => {
        const times = [...raw].sort((a, b) => a - b);
        const s = new RouteSeries(BOUNDS);
        for (const t of times) s.record(t, 0, t % 2 === 0);
        const now = (times.at(-1) ?? 0) + extra;
        const w = s.window(now, n);
        const nowSec = Math.floor(now / 1000);
        const inWindow = times.filter((t) => Math.floor(t / 1000) > nowSec - n);
        expect(w.requests.reduce((a, b) => a + b, 0)).toBe(inWindow.length);
        expect(w.errors.reduce((a, b) => a + b, 0)).toBe(inWindow.filter((t) => t % 2 === 0).length);
      },
    ));
  });

  it('adds workers\' windows slot by slot, and interpolates quantiles within a bucket', () => {
    const a = new RouteSeries(BOUNDS);
    const b = new RouteSeries(BOUNDS);
    for (let i = 0; i < 10; i++) a.record(1000, 1, false); // 1–5 ms
    b.record(1000, 12, true); // above 10 s
    const merged = mergeWindows([a.window(1500, 2), b.window(1500, 2)]);
    expect(merged.requests).toEqual([0, 11]);
    const view = summarize(merged, BOUNDS);
    expect(view.p50).toEqual([null, 1 + 4 * (5.5 / 10)]);
    expect(view.p99[1]).toBe(10_000);
    expect(quantile([0, 4, 0], [0.001, 0.002], 0.5)).toBe(1.5);
  });
});

describe('RetiredCounts (the counts of workers that exited)', () => {
  it('adds counters and histograms series by series, drops gauges, and aggregates with a live worker to the sum', async () => {
    const worker = async (requests: number, seconds: number[], inFlight: number): Promise<Awaited<ReturnType<Registry['getMetricsAsJSON']>>> => {
      const r = new Registry();
      const c = new Counter({ name: 't_requests_total', help: 'h', labelNames: ['route'], registers: [r] });
      c.inc({ route: 'a' }, requests);
      const h = new Histogram({ name: 't_seconds', help: 'h', buckets: [0.1, 1], registers: [r] });
      for (const x of seconds) h.observe(x);
      const g = new Gauge({ name: 't_in_flight', help: 'h', registers: [r] });
      g.set(inFlight);
      return r.getMetricsAsJSON();
    };
    const retired = new RetiredCounts();
    retired.add(await worker(3, [0.05, 0.5], 2) as never);
    retired.add(await worker(4, [2], 1) as never);
    const text = await AggregatorRegistry.aggregate([await worker(5, [0.05], 7), retired.json()] as never).metrics();
    expect(text).toContain('t_requests_total{route="a"} 12\n');
    expect(text).toContain('t_seconds_bucket{le="0.1"} 2\n');
    expect(text).toContain('t_seconds_bucket{le="1"} 3\n');
    expect(text).toContain('t_seconds_bucket{le="+Inf"} 4\n');
    expect(text).toContain('t_seconds_count 4\n');
    expect(Number(/^t_seconds_sum (\S+)$/m.exec(text)?.[1])).toBeCloseTo(2.6, 9);
    // The live worker's gauge alone.
    expect(text).toContain('t_in_flight 7\n');
  });
});
