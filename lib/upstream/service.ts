import { readFileSync } from 'node:fs';
import { Pool } from 'undici';
import { parseDuration, type Duration } from '../duration.ts';
import { HealthTracker, type HealthOptions } from './health.ts';

export interface ServiceOptions {
  /** Upstream base URLs, `http://` or `https://`; a path part is prefixed to every request. */
  upstreams: string[];
  /**
   * Time allowed for the upstream's response head, and between body chunks.
   * @default '30s'
   */
  timeout?: Duration;
  /**
   * Keep-alive connections per upstream instance.
   * @default 128
   */
  connections?: number;
  /**
   * Idle keep-alive sockets are closed after this long.
   * @default '4s'
   */
  keepAlive?: Duration;
  /** Verify upstream TLS certificates. @default true */
  tlsVerify?: boolean;
  /**
   * Path of a PEM file with the CA certificate(s) to trust for https
   * upstreams, instead of Node's bundled roots (an internal CA).
   */
  tlsCa?: string;
  /** Active health checking: `GET <path>` on every instance. Off when absent. */
  health?: HealthOptions;
}

const defaults = {
  timeout: '30s',
  connections: 128,
  keepAlive: '4s',
  tlsVerify: true,
} satisfies Required<Omit<ServiceOptions, 'upstreams' | 'health' | 'tlsCa'>>;

/** One upstream instance: its origin, a keep-alive pool and its health. */
export class Upstream {
  readonly origin: string;
  /** Path prefix from the upstream URL ('' when none). */
  readonly basePath: string;
  /** Host header value for this instance. */
  readonly host: string;
  readonly pool: Pool;
  readonly health: HealthTracker;

  constructor(url: string, options: { connections: number; keepAliveMs: number; timeoutMs: number; tlsVerify: boolean; ca: string | undefined; health: HealthTracker }) {
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

/**
 * A named upstream service: its instances, picked round-robin among the
 * healthy ones, skipping those a retry asks to avoid.
 */
export class Service {
  readonly upstreams: Upstream[];
  readonly timeoutMs: number;
  private next = 0;
  private healthTimer: NodeJS.Timeout | undefined;

  constructor(readonly name: string, options: ServiceOptions) {
    if (!Array.isArray(options.upstreams) || options.upstreams.length === 0) {
      throw new TypeError(`service ${name}: needs at least one upstream URL`);
    }
    const timeoutMs = parseDuration(options.timeout ?? defaults.timeout, `service ${name} timeout`);
    const keepAliveMs = parseDuration(options.keepAlive ?? defaults.keepAlive, `service ${name} keepAlive`);
    this.timeoutMs = timeoutMs;
    let ca: string | undefined;
    if (options.tlsCa !== undefined) {
      try {
        ca = readFileSync(options.tlsCa, 'utf8');
      } catch (err) {
        throw new TypeError(`service ${name} tlsCa: cannot read ${options.tlsCa} (${(err as Error).message})`);
      }
    }
    this.upstreams = options.upstreams.map((url) => new Upstream(url, {
      connections: options.connections ?? defaults.connections,
      keepAliveMs,
      timeoutMs,
      tlsVerify: options.tlsVerify ?? defaults.tlsVerify,
      ca,
      health: new HealthTracker(options.health ?? {}),
    }));
    if (options.health?.path !== undefined) this.startHealthChecks(options.health);
  }

  /**
   * The next usable instance, or undefined when none is. `avoid` lists origins
   * already tried by this request; they are used only if nothing else is left.
   */
  pick(avoid?: readonly string[]): Upstream | undefined {
    const list = this.upstreams;
    const n = list.length;
    if (n === 1) return list[0]!.health.healthy ? list[0] : undefined;
    let fallback: Upstream | undefined;
    for (let i = 0; i < n; i++) {
      const u = list[(this.next + i) % n]!;
      if (!u.health.healthy) continue;
      if (avoid !== undefined && avoid.includes(u.origin)) {
        fallback ??= u;
        continue;
      }
      this.next = (this.next + i + 1) % n;
      return u;
    }
    return fallback;
  }

  private startHealthChecks(options: HealthOptions): void {
    const intervalMs = parseDuration(options.interval ?? '5s', `service ${this.name} health.interval`);
    const path = options.path!;
    const probe = (): void => {
      for (const u of this.upstreams) {
        u.pool.request({ path: u.basePath + path, method: 'GET', headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs })
          .then(async (res) => {
            await res.body.dump();
            u.health.record(res.statusCode >= 200 && res.statusCode < 400);
          }, () => u.health.record(false));
      }
    };
    probe();
    this.healthTimer = setInterval(probe, intervalMs);
    this.healthTimer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.healthTimer);
    await Promise.all(this.upstreams.map((u) => u.pool.close().catch(() => u.pool.destroy())));
  }
}
