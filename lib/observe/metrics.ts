import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { readAhead } from '../stages/cache/read-ahead.ts';
import type { Service } from '../upstream/service.ts';
import { CACHE_RESULTS, DURATION_BUCKETS, type RouteStats } from './request-metrics.ts';
import { histogramSamples, registerScraped } from './scraped.ts';
import { UpstreamMetrics } from './upstream-metrics.ts';

/** A route as the admin page lists it. */
export interface RouteInfo {
  name: string;
  path: string;
  methods: readonly string[] | null;
  /** Its service (or services, for weighted backends). */
  services: readonly string[];
  /** Its stages in order, then forward. */
  stages: readonly string[];
}

const CLASSES = ['', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;
/** rxgate's version: its package.json is two levels up from lib/observe/ and dist/observe/ alike. */
const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/**
 * The gateway's Prometheus metrics (prom-client), served on the admin
 * listener's `GET /metrics`. One registry per gateway so several gateways in
 * a process (tests, workers) keep separate counts.
 *
 * Per-request counts (answers by route and status class, their duration,
 * upstream latency by instance) are plain numbers the hot path increments
 * (`routeStats`, `upstream`); the registry reads them when scraped, so a
 * request never pays prom-client's label hashing. Rarer events (ejections,
 * breaker transitions, reloads…) use prom-client's own metrics.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  /** Per-route answer counts and durations, written by RequestMetrics. */
  readonly routeStats = new Map<string, RouteStats>();
  /** Error answers by code. */
  readonly errorCounts = new Map<string, number>();
  /** Upstream latency and in-flight by service and instance. */
  readonly upstream = new UpstreamMetrics();
  /** The services whose breakers have a `rxgate_circuit_state` series. */
  private breaking = new Set<string>();
  /** The routes and services of the config now served, for the admin page. */
  catalog: { routes: readonly RouteInfo[] } = { routes: [] };
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
    // Workers' states are not added up: the most open one shows.
    aggregator: 'max',
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

  readonly reloads = new Counter({
    name: 'rxgate_reloads_total', help: 'Config reloads, by outcome (applied, refused) and trigger',
    labelNames: ['outcome', 'trigger'] as const, registers: [this.registry],
  });
  /**
   * 1 while the config file last read was applied, 0 after a refused one:
   * what an alert reads (Prometheus's own prometheus_config_last_reload_successful),
   * since the refusal's count in rxgate_reloads_total leaves the alert's
   * window while the file on disk, which the next start reads, is still bad.
   */
  readonly configApplied = new Gauge({
    name: 'rxgate_config_last_reload_successful', help: 'Whether the last config reload was applied (1) or refused (0); 1 at start',
    registers: [this.registry],
    // Workers: one that refused shows.
    aggregator: 'min',
  });
  readonly configAppliedAt = new Gauge({
    name: 'rxgate_config_last_reload_success_timestamp_seconds', help: 'When the config serving now was applied (the start, or the last applied reload), unix seconds',
    registers: [this.registry],
    aggregator: 'min',
  });
  /** Which rxgate answers, for a rollout's dashboard (as prometheus_build_info, Envoy's server.version). */
  readonly buildInfo = new Gauge({
    name: 'rxgate_build_info', help: 'Always 1; the version label is the rxgate running',
    labelNames: ['version'] as const, registers: [this.registry],
    // Workers run one build: 1, not N.
    aggregator: 'max',
  });
  /** Set at start and on each reload (lib/observe/certificates.ts). */
  readonly certificateExpiry = new Gauge({
    name: 'rxgate_tls_certificate_expiration_timestamp_seconds', help: 'When each listen.tls certificate expires (its notAfter), unix seconds, by entry and server_name (\'\' for the default one)',
    labelNames: ['entry', 'server_name'] as const, registers: [this.registry],
    // Every worker reads the same files: the soonest shows, not a sum.
    aggregator: 'min',
  });
  readonly retryBudgetRefused = new Counter({
    name: 'rxgate_retry_budget_refused_total', help: 'Retries the retry budget refused, by service',
    labelNames: ['service'] as const, registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registry = this.registry;
    registerScraped(registry, {
      name: 'rxgate_requests_total', help: 'Requests answered, by route and status class', type: 'counter',
      collect: (out) => {
        for (const s of this.routeStats.values()) {
          for (let c = 1; c < 6; c++) if (s.byClass[c]! > 0) out.push({ labels: { route: s.route, status: CLASSES[c]! }, value: s.byClass[c]! });
        }
      },
    });
    registerScraped(registry, {
      name: 'rxgate_request_duration_seconds', help: 'Time to the response head, by route', type: 'histogram',
      collect: (out) => {
        for (const s of this.routeStats.values()) histogramSamples(out, 'rxgate_request_duration_seconds', { route: s.route }, DURATION_BUCKETS, s.buckets, s.sum);
      },
    });
    registerScraped(registry, {
      name: 'rxgate_cache_requests_total', help: 'Answers of cached routes by the cache\'s verdict (hit, miss, stale, bypass, revalidated), by route', type: 'counter',
      collect: (out) => {
        for (const s of this.routeStats.values()) {
          for (let i = 0; i < CACHE_RESULTS.length; i++) if (s.cache[i]! > 0) out.push({ labels: { route: s.route, result: CACHE_RESULTS[i]! }, value: s.cache[i]! });
        }
      },
    });
    // The process's cache read-ahead (lib/stages/cache/read-ahead.ts): one budget per thread, summed across workers.
    registerScraped(registry, {
      name: 'rxgate_cache_read_ahead_bytes', help: 'Bytes stored misses have read from upstreams ahead of slow clients, held now (bounded by cache.maxReadAhead)', type: 'gauge',
      collect: (out) => { out.push({ labels: {}, value: readAhead.used }); },
    });
    registerScraped(registry, {
      name: 'rxgate_cache_read_ahead_refused_total', help: 'Times a stored miss stopped reading ahead of its slow client because cache.maxReadAhead was spent (its upstream waited for the client)', type: 'counter',
      collect: (out) => { out.push({ labels: {}, value: readAhead.refused }); },
    });
    registerScraped(registry, {
      name: 'rxgate_errors_total', help: 'Error answers by code', type: 'counter',
      collect: (out) => {
        for (const [code, n] of this.errorCounts) out.push({ labels: { code }, value: n });
      },
    });
    registerScraped(registry, {
      name: 'rxgate_upstream_duration_seconds', help: 'Upstream time to the response head (or failure), by service and instance', type: 'histogram',
      collect: (out) => this.upstream.collectDuration(out),
    });
    registerScraped(registry, {
      name: 'rxgate_upstream_responses_total', help: 'Upstream response heads by service and status class (2xx, 3xx, 4xx, 5xx), every attempt; failures before a head are rxgate_upstream_failures_total', type: 'counter',
      collect: (out) => this.upstream.collectResponses(out),
    });
    registerScraped(registry, {
      name: 'rxgate_upstream_failures_total', help: 'Upstream attempts that failed before a head (refused, reset, timed out), by service and instance', type: 'counter',
      collect: (out) => this.upstream.collectFailures(out),
    });
    registerScraped(registry, {
      name: 'rxgate_upstream_healthy', help: 'Upstream instances in rotation (1) or out of it, failing active checks or ejected (0), by service and instance', type: 'gauge',
      // Each worker checks and ejects on its own: an instance out in any worker shows 0, not a sum.
      aggregator: 'min',
      collect: (out) => this.upstream.collectHealthy(out),
    });
    registerScraped(registry, {
      name: 'rxgate_upstream_in_flight', help: 'Requests sent to an upstream instance and not yet finished', type: 'gauge',
      collect: (out) => this.upstream.collectInFlight(out),
    });
    this.buildInfo.set({ version: VERSION }, 1);
    this.configApplied.set(1);
    this.configAppliedAt.set(Date.now() / 1000);
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'rxgate_process_' });
  }

  /** What the gateway serves now: its routes (for the admin page) and services (latency, in flight). */
  describe(routes: readonly RouteInfo[], services: Iterable<Service>): void {
    this.catalog = { routes };
    this.upstream.watch(services);
    // A breaker's state has a series from the start (0, closed), as Envoy's and Resilience4j's
    // do, so an alert on it has something to read; a service no route breaks for loses its series.
    const breaking = new Set(routes.filter((r) => r.stages.includes('circuitBreaker')).flatMap((r) => r.services));
    for (const service of breaking) if (!this.breaking.has(service)) this.breakerState.set({ service }, 0);
    for (const service of this.breaking) if (!breaking.has(service)) this.breakerState.remove({ service });
    this.breaking = breaking;
  }
}
