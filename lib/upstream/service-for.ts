import { defined } from '../config/defined.ts';
import type { ServiceConfig } from '../config/schema.ts';
import type { CircuitBreakerConfig } from '../stages/circuit-breaker/schema.ts';
import type { GatewayEvents } from '../observe/events.ts';
import type { Resources } from '../resources/registry.ts';
import type { Runtime } from '../runtime.ts';
import { Service } from './service.ts';

/**
 * The running `Service` for a service's YAML config, from the resource
 * registry (routes, mirrors and a rebuild with the same config share one).
 */
export function serviceFor(name: string, sc: ServiceConfig, resources: Resources, runtime: Runtime, events: GatewayEvents): Service {
  const { upstreams = [], discovery, balancer, hash, timeout, connections, maxPending, connectTimeout, keepAlive, tlsVerify, tlsCa, health, ejectFor, ejectAfter, maxEjectFor, maxEjectionPercent, ejectOnStatuses, panic } = sc;
  const own = defined({ balancer, timeout, connections, maxPending, connectTimeout, keepAlive, tlsVerify, tlsCa, ...perInstanceEjection(sc), maxEjectionPercent, panic });
  const extra = {
    ...(hash !== undefined ? { hash: defined(hash) } : {}),
    ...(health !== undefined ? { health: defined(health) } : {}),
    ...(sc.tls !== undefined ? { tls: defined(sc.tls) } : {}),
    ...(discovery !== undefined ? { discovery: defined(discovery) as Record<string, unknown> } : {}),
  };
  const specs = upstreams.map((u) => typeof u === 'string' ? u : defined(u));
  return resources.get(`service:${name}:${JSON.stringify({ upstreams, ...own, ...extra })}`, () => {
    const service = new Service(name, { ...own, ...extra, upstreams: specs, runtime, events });
    // Listen once discovery has answered (or failed) once, so the first requests have instances.
    if (discovery !== undefined) resources.beforeListen(() => service.discovered);
    return service;
  }, (s) => s.close());
}

/**
 * The service's ejection settings. `circuitBreaker: { perInstance: true }`
 * is per-instance breaking, which is what outlier ejection does: its
 * `consecutiveFailures`, `resetTimeout`, `maxResetTimeout` and
 * `failureStatuses` become `ejectAfter`, `ejectFor`, `maxEjectFor` and
 * `ejectOnStatuses` where those are not set themselves.
 */
function perInstanceEjection(sc: ServiceConfig): Pick<ServiceConfig, 'ejectFor' | 'ejectAfter' | 'maxEjectFor' | 'ejectOnStatuses'> {
  const { ejectFor, ejectAfter, maxEjectFor, ejectOnStatuses } = sc;
  const cb = sc.circuitBreaker as CircuitBreakerConfig | false | undefined;
  if (typeof cb !== 'object' || cb.perInstance !== true) return { ejectFor, ejectAfter, maxEjectFor, ejectOnStatuses };
  return {
    ejectFor: ejectFor ?? cb.resetTimeout ?? '30s',
    ejectAfter: ejectAfter ?? cb.consecutiveFailures ?? 5,
    maxEjectFor: maxEjectFor ?? cb.maxResetTimeout ?? '5m',
    ejectOnStatuses: ejectOnStatuses ?? cb.failureStatuses,
  };
}
