import type { GatewayEvents } from '../observe/events.ts';
import { healthReport, type BreakerHealth, type HealthReport } from './health-view.ts';
import type { Service } from './service.ts';

/**
 * What a YAML-built gateway's health view reads: its services (each
 * instance's health and ejection, read live) and the state of every service
 * breaker as its transitions report it.
 */
export class HealthSources {
  readonly services = new Set<Service>();
  private readonly serviceBreakers = new Map<string, BreakerHealth>();

  constructor(events: GatewayEvents) {
    events.on('breakerTransition', (e) => {
      if (e.breaker === e.service && e.replaced !== true) this.serviceBreakers.set(`${e.service}\n${e.breaker}`, { service: e.service, breaker: e.breaker, state: e.to });
    });
    // A reload that replaced a breaker: the new one is closed (it has made no transition yet).
    events.on('breakerBuilt', (e) => {
      if (this.serviceBreakers.has(`${e.service}\n${e.breaker}`)) this.serviceBreakers.set(`${e.service}\n${e.breaker}`, { service: e.service, breaker: e.breaker, state: 'closed' });
    });
  }

  report(): HealthReport {
    return healthReport(this.services, [...this.serviceBreakers.values()]);
  }
}
