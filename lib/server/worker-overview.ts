import type { Overview } from '../admin/page.ts';
import { mergeWindows, type SeriesWindow } from '../admin/series.ts';
import type { BreakerHealth, InstanceHealth, ServiceHealth } from '../upstream/health-view.ts';

const STATUS_RANK = { ok: 0, panic: 1, unavailable: 2 } as const;
const BREAKER_RANK: Record<string, number> = { closed: 0, 'half-open': 1, open: 2 };

/**
 * One overview from every worker's: the routes are the same config's; an
 * instance is in flight as the sum of the workers, unhealthy or ejected if
 * any worker says so (each worker ejects on its own traffic), as slow as the
 * slowest; a service and a breaker show their worst state.
 */
export function mergeOverviews(overviews: readonly Overview[]): Overview {
  if (overviews.length === 0) return { routes: [], health: { status: 'unavailable', services: {}, breakers: [] }, workers: 0 };
  const services: Record<string, ServiceHealth> = {};
  const breakers = new Map<string, BreakerHealth>();
  for (const o of overviews) {
    for (const [name, s] of Object.entries(o.health.services)) {
      const seen = services[name];
      services[name] = seen === undefined ? { ...s, instances: s.instances.map((i) => ({ ...i })) } : mergeService(seen, s);
    }
    for (const b of o.health.breakers) {
      const key = `${b.service}\n${b.breaker}`;
      const seen = breakers.get(key);
      if (seen === undefined || (BREAKER_RANK[b.state] ?? 0) > (BREAKER_RANK[seen.state] ?? 0)) breakers.set(key, b);
    }
  }
  const ok = Object.values(services).every((s) => s.status === 'ok');
  return {
    routes: overviews[0]!.routes,
    health: { status: ok ? 'ok' : 'unavailable', services, breakers: [...breakers.values()] },
    workers: overviews.length,
  };
}

function mergeService(a: ServiceHealth, b: ServiceHealth): ServiceHealth {
  const byUrl = new Map<string, InstanceHealth>(a.instances.map((i) => [i.url, i]));
  for (const i of b.instances) {
    const seen = byUrl.get(i.url);
    if (seen === undefined) {
      byUrl.set(i.url, { ...i });
      continue;
    }
    seen.healthy &&= i.healthy;
    seen.ejected ||= i.ejected;
    seen.ejections += i.ejections;
    seen.inFlight += i.inFlight;
    seen.latencyMs = Math.max(seen.latencyMs, i.latencyMs);
    if (i.ejectedUntil !== null && (seen.ejectedUntil === null || i.ejectedUntil > seen.ejectedUntil)) seen.ejectedUntil = i.ejectedUntil;
    if (i.lastCheck !== null && (seen.lastCheck === null || i.lastCheck.at > seen.lastCheck.at)) seen.lastCheck = i.lastCheck;
  }
  return {
    status: STATUS_RANK[b.status] > STATUS_RANK[a.status] ? b.status : a.status,
    balancer: a.balancer,
    instances: [...byUrl.values()],
  };
}

/** Every worker's windows per route as one window per route. */
export function mergeRouteWindows(perWorker: ReadonlyArray<Record<string, SeriesWindow>>): Record<string, SeriesWindow> {
  const byRoute = new Map<string, SeriesWindow[]>();
  for (const w of perWorker) {
    for (const [route, window] of Object.entries(w)) {
      const list = byRoute.get(route);
      if (list === undefined) byRoute.set(route, [window]);
      else list.push(window);
    }
  }
  const out: Record<string, SeriesWindow> = {};
  for (const [route, list] of byRoute) out[route] = mergeWindows(list);
  return out;
}
