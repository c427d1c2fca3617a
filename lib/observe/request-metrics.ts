import { performance } from 'node:perf_hooks';
import { RouteSeries } from '../admin/series.ts';
import type { GatewayError } from '../errors.ts';
import type { GatewayMetrics } from './metrics.ts';
import { bucketOf } from './scraped.ts';

/** `rxgate_request_duration_seconds` buckets, in seconds. */
export const DURATION_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** `rxgate_cache_requests_total`'s `result` values, by index. */
export const CACHE_RESULTS = ['hit', 'miss', 'stale', 'bypass', 'revalidated'] as const;

/**
 * One route's counts as plain numbers: answers by status class, time to
 * the head in buckets, and the admin page's per-second series. The
 * registry reads them at scrape time.
 */
export class RouteStats {
  /** Answers by status class: index 1 is 1xx … 5 is 5xx. */
  readonly byClass = new Float64Array(6);
  /** Observations per duration bucket (the last slot: above 10 s). */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length + 1);
  /** Sum of durations, seconds. */
  sum = 0;
  readonly series = new RouteSeries(DURATION_BUCKETS);
  /** Answers by the cache's verdict, in CACHE_RESULTS order. */
  readonly cache = new Float64Array(CACHE_RESULTS.length);

  constructor(readonly route: string) {}
}

/**
 * Counts every answer by route and status class, and its time to the head.
 * Per request: one map lookup (skipped when the route is the previous
 * one's) and a few number increments; prom-client reads the numbers when
 * scraped (see GatewayMetrics).
 */
export class RequestMetrics {
  private readonly routes: Map<string, RouteStats>;
  private readonly errors: Map<string, number>;
  private last: RouteStats | null = null;

  constructor(metrics: GatewayMetrics) {
    this.routes = metrics.routeStats;
    this.errors = metrics.errorCounts;
  }

  /**
   * One answer: its route, status, when it came in (`performance.now()`),
   * its error, the cache's verdict if any, and when it was answered (the
   * edge's own clock read for the response-time header, passed on).
   */
  answered(
    route: string, status: number, receivedAt: number, error: GatewayError | null,
    cache?: 'HIT' | 'MISS' | 'STALE' | 'BYPASS' | 'REVALIDATED', now: number = performance.now(),
  ): void {
    let stats = this.last;
    if (stats === null || stats.route !== route) {
      stats = this.routes.get(route) ?? null;
      if (stats === null) {
        stats = new RouteStats(route);
        this.routes.set(route, stats);
      }
      this.last = stats;
    }
    const cls = (status / 100) | 0;
    stats.byClass[cls > 0 && cls < 6 ? cls : 5]!++;
    const seconds = (now - receivedAt) / 1000;
    const bucket = bucketOf(DURATION_BUCKETS, seconds);
    stats.buckets[bucket]!++;
    stats.sum += seconds;
    stats.series.record(now, bucket, cls === 5);
    if (error !== null) this.errors.set(error.code, (this.errors.get(error.code) ?? 0) + 1);
    if (cache !== undefined) stats.cache[cache === 'HIT' ? 0 : cache === 'MISS' ? 1 : cache === 'STALE' ? 2 : cache === 'BYPASS' ? 3 : 4]!++;
  }

  /**
   * An answer `answered` counted under `status` whose head the writer then
   * refused (a CR, LF or NUL, a value not a string): the client got a 500
   * (`error`) instead, so it moves to 5xx and its error is counted. Its
   * time to the head stays as counted, and so does the admin page's
   * per-second series (a request, not an error, in that second).
   */
  refused(route: string, status: number, error: GatewayError): void {
    const stats = this.routes.get(route);
    if (stats !== undefined) {
      const cls = (status / 100) | 0;
      stats.byClass[cls > 0 && cls < 6 ? cls : 5]!--;
      stats.byClass[5]!++;
    }
    this.errors.set(error.code, (this.errors.get(error.code) ?? 0) + 1);
  }
}
