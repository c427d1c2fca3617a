import type { GatewayEvents } from './events.ts';
import type { Logger } from './log.ts';
import type { GatewayMetrics } from './metrics.ts';

const STATE_VALUE = { closed: 0, 'half-open': 1, open: 2 } as const;

/**
 * Turns a gateway's events into Prometheus metrics and log lines: the one
 * place that knows both. Label children are cached (prom-client hashes the
 * label object on every `inc()`).
 */
export function observe(events: GatewayEvents, metrics: GatewayMetrics, logger: Logger): void {
  const child = <T>(cache: Map<string, T>, key: string, make: () => T): T => {
    let c = cache.get(key);
    if (c === undefined) {
      c = make();
      cache.set(key, c);
    }
    return c;
  };
  const retries = new Map<string, { inc(): void }>();
  const limited = new Map<string, { inc(): void }>();
  const degraded = new Map<string, { inc(): void }>();
  const countDegraded = (reason: string): void => child(degraded, reason, () => metrics.degraded.labels(reason)).inc();

  events.on('retry', (e) => child(retries, e.service, () => metrics.retries.labels(e.service)).inc());
  const refused = new Map<string, { inc(): void }>();
  events.on('retryRefused', (e) => {
    countDegraded('retry_budget_refused');
    child(refused, e.service, () => metrics.retryBudgetRefused.labels(e.service)).inc();
    logger.warn({ service: e.service, route: e.route, reqId: e.requestId }, 'retry refused: retry budget spent');
  });
  events.on('rateLimited', (e) => child(limited, e.route, () => metrics.rateLimited.labels(e.route)).inc());
  events.on('breakerTransition', (e) => {
    metrics.breakerTransitions.inc({ service: e.service, to: e.to });
    // The series is the breaker now serving: a replaced one's late transitions move it no more.
    if (e.replaced !== true) metrics.breakerState.set({ service: e.service }, STATE_VALUE[e.to]);
    logger.warn({ service: e.service, breaker: e.breaker, from: e.from, to: e.to, replaced: e.replaced }, 'circuit breaker transition');
  });
  events.on('breakerBuilt', (e) => metrics.breakerState.set({ service: e.service }, 0));
  events.on('degraded', (e) => {
    countDegraded(e.reason);
    if (e.message !== undefined) logger.warn({ reason: e.reason, err: errorText(e.err) }, e.message);
    else if (e.err !== undefined) logger.debug({ reason: e.reason, err: errorText(e.err) }, 'degraded');
  });
  events.on('upstreamEjected', (e) => {
    metrics.ejections.inc({ service: e.service });
    logger.warn({ service: e.service, instance: e.instance, forMs: e.forMs, ejections: e.ejections }, 'upstream instance ejected');
  });
  events.on('upstreamHealth', (e) => {
    metrics.healthChanges.inc({ service: e.service, to: e.healthy ? 'up' : 'down' });
    logger.warn({ service: e.service, instance: e.instance, healthy: e.healthy }, e.healthy ? 'upstream instance healthy' : 'upstream instance unhealthy');
  });
  events.on('noHealthyUpstream', (e) => metrics.noHealthyUpstream.inc({ service: e.service }));
  events.on('hedge', (e) => metrics.hedges.inc({ service: e.service, outcome: e.outcome }));
  events.on('mirror', (e) => metrics.mirrored.inc({ service: e.service, outcome: e.outcome }));
  events.on('concurrencyLimited', (e) => metrics.concurrencyLimited.inc({ service: e.service }));
  events.on('websocket', (e) => {
    if (e.phase === 'open') {
      metrics.websockets.inc({ route: e.route });
      return;
    }
    metrics.websockets.dec({ route: e.route });
    metrics.websocketsClosed.inc({ route: e.route, end: e.end });
    metrics.websocketDuration.observe({ route: e.route }, e.durationMs / 1000);
    metrics.websocketMessages.inc({ route: e.route, direction: 'in' }, e.messagesIn);
    metrics.websocketMessages.inc({ route: e.route, direction: 'out' }, e.messagesOut);
  });
  // The reload itself logs its outcome (lib/lifecycle); here it is counted.
  events.on('reload', (e) => {
    metrics.reloads.inc({ outcome: e.outcome, trigger: e.trigger });
    metrics.configApplied.set(e.outcome === 'applied' ? 1 : 0);
    if (e.outcome === 'applied') metrics.configAppliedAt.set(Date.now() / 1000);
  });
  events.on('recovered', (e) => {
    if (e.message !== undefined) logger.info({ reason: e.reason }, e.message);
  });
}

function errorText(err: unknown): string | undefined {
  return err === undefined ? undefined : err instanceof Error ? err.message : String(err);
}
