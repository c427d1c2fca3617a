import type { GatewayEvents } from '../observe/events.ts';
import type { BreakerRegistry } from '../stages/circuit-breaker/registry.ts';
import { healthReport, type BreakerHealth, type HealthReport } from './health-view.ts';
import type { Service } from './service.ts';

/**
 * What a YAML-built gateway's health view reads: its services, the
 * per-instance breaker registries `forward` consults (read live), and the
 * state of every service breaker as its transitions report it.
 */
export class HealthSources {
  readonly services = new Set<Service>();
  /** Per-instance breaker registries, with their service's name. */
  readonly instanceBreakers = new Map<BreakerRegistry, string>();
  private readonly serviceBreakers = new Map<string, BreakerHealth>();

  constructor(events: GatewayEvents) {
    events.on('breakerTransition', (e) => {
      if (e.breaker === e.service) this.serviceBreakers.set(`${e.service}\n${e.breaker}`, { service: e.service, breaker: e.breaker, state: e.to });
    });
  }

  report(): HealthReport {
    const breakers = [...this.serviceBreakers.values()];
    for (const [registry, service] of this.instanceBreakers) {
      for (const [key, b] of registry.entries()) breakers.push({ service, breaker: key, state: b.state });
    }
    return healthReport(this.services, breakers);
  }
}
