import type { Service, Upstream } from './service.ts';

/** One instance in `GET /__rxgate/health`. */
export interface InstanceHealth {
  url: string;
  weight: number;
  /** Healthy by active checks (true when the service has none). */
  healthy: boolean;
  /** Out of rotation by passive ejection now. */
  ejected: boolean;
  /** When the current (or last) ejection ends, ISO 8601; null if never ejected. */
  ejectedUntil: string | null;
  /** Ejections since its last success. */
  ejections: number;
  inFlight: number;
  /** Peak-EWMA latency to the response head, ms (0 before any response). */
  latencyMs: number;
  /** The latest active check; null without checks or before the first. */
  lastCheck: { ok: boolean; status: number | null; at: string; error?: string } | null;
}

export interface ServiceHealth {
  /** `ok`: some instance in rotation; `panic`: none, but panic mode sends anyway; `unavailable`: none, and 503 NO_HEALTHY_UPSTREAM. */
  status: 'ok' | 'panic' | 'unavailable';
  balancer: string;
  instances: InstanceHealth[];
}

export interface BreakerHealth {
  service: string;
  /** The service's name, or an instance's origin for per-instance breakers. */
  breaker: string;
  state: string;
}

/** The JSON of `GET /__rxgate/health`. */
export interface HealthReport {
  /** `ok` (HTTP 200) when every service has an instance in rotation, else `unavailable` (503). */
  status: 'ok' | 'unavailable';
  services: Record<string, ServiceHealth>;
  /** Breakers that are not closed, or that have changed state since start. */
  breakers: BreakerHealth[];
}

/** Whether `u` takes requests now: healthy by active checks and not ejected (what `/health`'s `ok` counts; `rxgate_upstream_healthy`). */
export function inRotation(u: Upstream, now: number): boolean {
  return u.health.healthy && !u.outlier.ejected(now);
}

/** A service's instances as the health view shows them. */
export function serviceHealth(service: Service): ServiceHealth {
  const runtime = service.runtime;
  const now = runtime.now();
  const wall = runtime.wallNow();
  const iso = (clock: number): string => new Date(wall + (clock - now)).toISOString();
  const instances = service.upstreams.map((u): InstanceHealth => {
    const until = u.outlier.ejectedUntil;
    const check = u.lastCheck;
    return {
      url: u.url,
      weight: u.weight,
      healthy: u.health.healthy,
      ejected: u.outlier.ejected(now),
      ejectedUntil: until === -Infinity ? null : iso(until),
      ejections: u.outlier.ejections,
      inFlight: u.inFlight,
      latencyMs: Math.round(u.latency(now) * 1000) / 1000,
      lastCheck: check === null ? null : {
        ok: check.ok, status: check.status, at: new Date(check.at).toISOString(),
        ...(check.error !== undefined ? { error: check.error } : {}),
      },
    };
  });
  const usable = instances.some((i) => i.healthy && !i.ejected);
  return { status: usable ? 'ok' : service.panic ? 'panic' : 'unavailable', balancer: service.balancerName, instances };
}

/** The whole view: every service, and the breakers `breakers` lists. */
export function healthReport(services: Iterable<Service>, breakers: BreakerHealth[] = []): HealthReport {
  const out: Record<string, ServiceHealth> = {};
  let ok = true;
  for (const s of services) {
    const h = serviceHealth(s);
    out[s.name] = h;
    if (h.status !== 'ok') ok = false;
  }
  return { status: ok ? 'ok' : 'unavailable', services: out, breakers };
}
