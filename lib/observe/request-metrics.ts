import { performance } from 'node:perf_hooks';
import type { GatewayError } from '../errors.ts';
import type { GatewayMetrics } from './metrics.ts';

interface RouteChildren {
  requests: Array<{ inc(): void }>;
  duration: { observe(v: number): void };
}

/**
 * Counts every answer by route and status class, and its time to the head.
 * Label children are cached per route and status class: prom-client hashes
 * a label object on every `inc()`, and this runs per request.
 */
export class RequestMetrics {
  private readonly routes = new Map<string, RouteChildren>();

  constructor(private readonly metrics: GatewayMetrics) {}

  answered(route: string, status: number, receivedAt: number, error: GatewayError | null): void {
    let children = this.routes.get(route);
    if (children === undefined) {
      children = { requests: [], duration: this.metrics.duration.labels(route) };
      this.routes.set(route, children);
    }
    const cls = (status / 100) | 0;
    (children.requests[cls] ??= this.metrics.requests.labels(route, `${cls}xx`)).inc();
    children.duration.observe((performance.now() - receivedAt) / 1000);
    if (error !== null) this.metrics.errors.inc({ code: error.code });
  }
}
