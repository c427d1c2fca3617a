import { Pool } from 'undici';
import type { HealthTracker } from './health.ts';
import type { OutlierTracker } from './outlier.ts';

/** How `Service` builds each instance. */
export interface UpstreamSettings {
  connections: number;
  keepAliveMs: number;
  timeoutMs: number;
  tlsVerify: boolean;
  ca: string | undefined;
  health: HealthTracker;
  outlier: OutlierTracker;
}

/** One upstream instance: its origin, a keep-alive pool, its active and passive health. */
export class Upstream {
  readonly origin: string;
  /** Path prefix from the upstream URL ('' when none). */
  readonly basePath: string;
  /** Host header value for this instance. */
  readonly host: string;
  readonly pool: Pool;
  /** Active health, from probes. */
  readonly health: HealthTracker;
  /** Passive health, from traffic (ejection after connection failures and timeouts). */
  readonly outlier: OutlierTracker;

  constructor(url: string, options: UpstreamSettings) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new TypeError(`upstream ${JSON.stringify(url)} is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`upstream ${url}: only http and https are supported`);
    this.origin = u.origin;
    this.basePath = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
    this.host = u.host;
    this.health = options.health;
    this.outlier = options.outlier;
    this.pool = new Pool(u.origin, {
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveMs,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect: { rejectUnauthorized: options.tlsVerify, ...(options.ca !== undefined ? { ca: options.ca } : {}) },
    });
  }
}
