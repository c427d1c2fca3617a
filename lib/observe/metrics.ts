import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The gateway's Prometheus metrics (prom-client), served on
 * `GET /__rxgate/metrics`. One registry per gateway so several gateways in a
 * process (tests, workers) keep separate counts.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'rxgate_requests_total', help: 'Requests answered, by route and status class',
    labelNames: ['route', 'status'] as const, registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'rxgate_request_duration_seconds', help: 'Time to the response head, by route',
    labelNames: ['route'] as const, registers: [this.registry],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  readonly errors = new Counter({
    name: 'rxgate_errors_total', help: 'Error answers by code',
    labelNames: ['code'] as const, registers: [this.registry],
  });
  readonly clientAborts = new Counter({
    name: 'rxgate_client_aborts_total', help: 'Clients that went away before the response was complete',
    registers: [this.registry],
  });
  readonly brokenResponses = new Counter({
    name: 'rxgate_broken_responses_total', help: 'Responses whose upstream failed after the head was sent (connection closed)',
    registers: [this.registry],
  });
  /** Anything that degrades silently otherwise: Redis fallbacks, refused retries, bypassed caches. */
  readonly degraded = new Counter({
    name: 'rxgate_degraded_total', help: 'Degraded-mode events by reason',
    labelNames: ['reason'] as const, registers: [this.registry],
  });
  readonly breakerState = new Gauge({
    name: 'rxgate_circuit_state', help: 'Circuit breaker state per service (0 closed, 1 half-open, 2 open)',
    labelNames: ['service'] as const, registers: [this.registry],
  });
  readonly breakerTransitions = new Counter({
    name: 'rxgate_circuit_transitions_total', help: 'Circuit breaker transitions',
    labelNames: ['service', 'to'] as const, registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'rxgate_retries_total', help: 'Upstream attempts made again by retry, by service',
    labelNames: ['service'] as const, registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'rxgate_rate_limited_total', help: 'Requests refused by a rate limit, by route',
    labelNames: ['route'] as const, registers: [this.registry],
  });

  readonly ejections = new Counter({
    name: 'rxgate_upstream_ejections_total', help: 'Upstream instances taken out of rotation by passive ejection, by service',
    labelNames: ['service'] as const, registers: [this.registry],
  });
  readonly healthChanges = new Counter({
    name: 'rxgate_upstream_health_changes_total', help: 'Instances marked up or down by active health checks',
    labelNames: ['service', 'to'] as const, registers: [this.registry],
  });
  readonly noHealthyUpstream = new Counter({
    name: 'rxgate_no_healthy_upstream_total', help: 'Requests answered 503 NO_HEALTHY_UPSTREAM, by service',
    labelNames: ['service'] as const, registers: [this.registry],
  });
  readonly hedges = new Counter({
    name: 'rxgate_hedges_total', help: 'Hedged attempts: sent, won (its head came first), lost',
    labelNames: ['service', 'outcome'] as const, registers: [this.registry],
  });
  readonly mirrored = new Counter({
    name: 'rxgate_mirror_total', help: 'Mirrored requests: sent, dropped (limit), failed',
    labelNames: ['service', 'outcome'] as const, registers: [this.registry],
  });
  readonly concurrencyLimited = new Counter({
    name: 'rxgate_concurrency_limited_total', help: 'Requests refused by the adaptive concurrency limit, by service',
    labelNames: ['service'] as const, registers: [this.registry],
  });
  readonly websockets = new Gauge({
    name: 'rxgate_websocket_connections', help: 'Proxied WebSocket connections open, by route',
    labelNames: ['route'] as const, registers: [this.registry],
  });
  readonly websocketsClosed = new Counter({
    name: 'rxgate_websocket_closed_total', help: 'Proxied WebSocket connections closed, by route and what ended them',
    labelNames: ['route', 'end'] as const, registers: [this.registry],
  });
  readonly websocketDuration = new Histogram({
    name: 'rxgate_websocket_duration_seconds', help: 'How long proxied WebSocket connections lasted, by route',
    labelNames: ['route'] as const, registers: [this.registry],
    buckets: [0.1, 1, 10, 60, 300, 1800, 3600, 14400],
  });
  readonly websocketMessages = new Counter({
    name: 'rxgate_websocket_messages_total', help: 'WebSocket messages relayed (counted at close), by route and direction',
    labelNames: ['route', 'direction'] as const, registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'rxgate_process_' });
  }
}
