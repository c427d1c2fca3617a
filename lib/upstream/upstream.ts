import { Client, Pool } from 'undici';
import { UpstreamOverloadedError } from '../errors.ts';
import type { HealthTracker } from './health.ts';
import type { OutlierTracker } from './outlier.ts';
import type { UpstreamConnect } from './upstream-tls.ts';

/** How `Service` builds each instance. */
export interface UpstreamSettings {
  connections: number;
  /** Requests waiting for a connection, at most (`maxPending`). @default 1024 */
  maxPending?: number;
  keepAliveMs: number;
  timeoutMs: number;
  /** undici's `connect`: TLS options, or a connector checking pins (see `upstreamConnect` in upstream-tls.ts). */
  connect: UpstreamConnect;
  health: HealthTracker;
  outlier: OutlierTracker;
  /** Share of traffic relative to the service's other instances. @default 1 */
  weight?: number;
  /** Unique within the service, so balancers can keep per-instance state in arrays. @default 0 */
  id?: number;
}

/** The outcome of the latest active health check of an instance. */
export interface CheckResult {
  readonly ok: boolean;
  /** The status the probe got; null when it got no response. */
  readonly status: number | null;
  /** Wall-clock ms of the check. */
  readonly at: number;
  readonly error?: string;
}

const RETRY_IN_1S: Readonly<Record<string, string>> = Object.freeze({ 'retry-after': '1' });

/** Decay time of the peak-EWMA latency (Finagle's and linkerd's default). */
export const EWMA_DECAY_MS = 10_000; // 10s

/**
 * One upstream instance: its origin, a keep-alive pool, its active and
 * passive health, and its load (requests in flight, peak-EWMA latency),
 * which balancers read.
 */
export class Upstream {
  readonly origin: string;
  /** The URL as configured (origin and path prefix). */
  readonly url: string;
  /** Path prefix from the upstream URL ('' when none). */
  readonly basePath: string;
  /** Host header value for this instance. */
  readonly host: string;
  /**
   * The TLS name undici is told per request (https only, else undefined):
   * fixed, so a client's Host cannot make undici drop the connection as a
   * "servername changed" (the connector picks the real SNI name: upstream-tls.ts).
   */
  readonly servername: string | undefined;
  readonly pool: Pool;
  /** Active health, from probes. */
  readonly health: HealthTracker;
  /** Passive health, from traffic (ejection after connection failures and timeouts). */
  readonly outlier: OutlierTracker;
  readonly weight: number;
  readonly id: number;
  /** Requests sent to this instance and not yet finished. */
  inFlight = 0;
  /** `connections` + `maxPending`: a request that finds `inFlight` at this is refused (forward.ts), not queued. */
  readonly maxInFlight: number;
  private readonly maxPending: number;
  /** Peak-EWMA latency to the response head in ms, as of `ewmaAt`; 0 before the first response. */
  ewma = 0;
  ewmaAt = 0;
  /** The latest active health check; null before the first. */
  lastCheck: CheckResult | null = null;
  /** Removed from its service by discovery: it finishes what it has, then its pool closes. */
  draining = false;
  /**
   * The active health checks' own connection, made at the first check: a
   * check queued behind requests holding every one of `connections` neither
   * passed nor failed until one freed up, so an instance busy with long
   * requests was not checked at all (Envoy's health checker keeps its own
   * connection per host, `reuse_connection`).
   */
  private checker: Client | null = null;
  private checkerUp = false;
  private readonly checkerOptions: Client.Options;

  constructor(url: string, options: UpstreamSettings) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new TypeError(`upstream ${JSON.stringify(url)} is not a URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new TypeError(`upstream ${url}: only http and https are supported`);
    const weight = options.weight ?? 1;
    if (!(weight > 0) || !Number.isFinite(weight)) throw new TypeError(`upstream ${url}: weight must be a positive number, got ${weight}`);
    this.origin = u.origin;
    this.url = url;
    this.basePath = u.pathname === '/' ? '' : u.pathname.replace(/\/$/, '');
    this.host = u.host;
    this.servername = u.protocol === 'https:' ? u.hostname : undefined;
    this.health = options.health;
    this.outlier = options.outlier;
    this.weight = weight;
    this.id = options.id ?? 0;
    const maxPending = this.maxPending = options.maxPending ?? 1024;
    if (!Number.isInteger(maxPending) || maxPending < 0) throw new TypeError(`upstream ${url}: maxPending must be an integer of 0 or more, got ${maxPending}`);
    this.maxInFlight = options.connections + maxPending;
    this.checkerOptions = { pipelining: 1, keepAliveTimeout: options.keepAliveMs, connect: options.connect };
    this.pool = new Pool(u.origin, {
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveMs,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect: options.connect,
    });
  }

  /** Where active health checks go: a connection of their own. */
  checks(): Client {
    if (this.checker !== null) return this.checker;
    const client = this.checker = new Client(this.origin, this.checkerOptions);
    client.on('connect', () => { if (this.checker === client) this.checkerUp = true; });
    client.on('disconnect', () => { if (this.checker === client) this.checkerUp = false; });
    return client;
  }

  /** Whether the checks' connection is open (TCP and TLS done), so a check's request is out. */
  checksConnected(): boolean {
    return this.checkerUp;
  }

  /** Destroys the checks' connection (a check timed out: Envoy closes it too); the next check makes another. */
  dropChecks(): void {
    this.checker?.destroy().catch(() => {});
    this.checker = null;
    this.checkerUp = false;
  }

  /** Closes the pool once what it carries is done (destroyed if that fails); a running check has nothing worth waiting for. */
  async close(): Promise<void> {
    this.dropChecks();
    await this.pool.close().catch(() => this.pool.destroy());
  }

  /** What a request gets when `inFlight` is at `maxInFlight`: 503 UPSTREAM_OVERLOADED, never sent. */
  overloaded(): UpstreamOverloadedError {
    return new UpstreamOverloadedError(`upstream ${this.origin} has ${this.maxPending} requests waiting for a connection`, { headers: RETRY_IN_1S, sent: false });
  }

  /**
   * The peak-EWMA latency at clock time `now`: it decays towards 0 while no
   * response comes (Finagle reads it the same way), so an instance that was
   * slow once is tried again after a while instead of being starved forever.
   */
  latency(now: number): number {
    const ewma = this.ewma;
    if (ewma === 0) return 0;
    const dt = now - this.ewmaAt;
    return dt <= 0 ? ewma : ewma * Math.exp(-dt / EWMA_DECAY_MS);
  }

  /** One more latency sample `ms`, taken at `now`: a peak is taken at once, a dip averaged in. */
  observe(ms: number, now: number): void {
    if (ms >= this.ewma) this.ewma = ms;
    else {
      const w = Math.exp(-Math.max(0, now - this.ewmaAt) / EWMA_DECAY_MS);
      this.ewma = this.ewma * w + ms * (1 - w);
    }
    this.ewmaAt = now;
  }
}
