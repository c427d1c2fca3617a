import { readFileSync } from 'node:fs';
import { Subscription } from 'rxjs';
import { parseDuration, type Duration } from '../duration.ts';
import { after, every, systemRuntime, type Runtime } from '../runtime.ts';
import { HealthTracker, type HealthOptions } from './health.ts';
import { OutlierTracker, type OutlierConfig } from './outlier.ts';
import { Upstream } from './upstream.ts';

export { Upstream };

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
  /**
   * Passive ejection (nginx's `fail_timeout`, Envoy's outlier detection): an
   * instance that refused a connection or timed out `ejectAfter` times in a
   * row is taken out of rotation this long at once. `0` turns it off.
   * @default '10s'
   */
  ejectFor?: Duration;
  /**
   * Connection failures or timeouts in a row that eject an instance (nginx's `max_fails`).
   * @default 1
   */
  ejectAfter?: number;
  /**
   * Each ejection of an instance that has not answered since the last one
   * doubles `ejectFor`, up to this.
   * @default '5m'
   */
  maxEjectFor?: Duration;
  /**
   * When every instance is out (ejected, or unhealthy by active checks),
   * pick one anyway (Envoy's panic mode) rather than answer 503: an instance
   * that may be up beats a certain error, and a service is never black-holed
   * by its own bookkeeping. `false` fails fast with `ServiceUnavailableError`.
   * @default true
   */
  panic?: boolean;
  /** Where probe timers, the ejection clock and the probe jitter come from. @default systemRuntime */
  runtime?: Runtime;
}

const defaults = {
  timeout: '30s',
  connections: 128,
  keepAlive: '4s',
  tlsVerify: true,
  ejectFor: '10s',
  ejectAfter: 1,
  maxEjectFor: '5m',
  panic: true,
  runtime: systemRuntime,
} satisfies Required<Omit<ServiceOptions, 'upstreams' | 'health' | 'tlsCa'>>;

/**
 * A named upstream service: its instances, picked round-robin among those in
 * rotation (healthy by active checks and not ejected), skipping those a
 * retry already tried.
 */
export class Service {
  readonly upstreams: Upstream[];
  readonly timeoutMs: number;
  /** Whether `pick` falls back to an instance out of rotation when none is in. */
  readonly panic: boolean;
  private readonly runtime: Runtime;
  private next = 0;
  /** The latest `ejectedUntil` of any instance: until then `pick` looks at the clock. */
  private outUntil = -Infinity;
  private healthTimer: Subscription | null = null;

  constructor(readonly name: string, options: ServiceOptions) {
    if (!Array.isArray(options.upstreams) || options.upstreams.length === 0) {
      throw new TypeError(`service ${name}: needs at least one upstream URL`);
    }
    const o = { ...defaults, ...options };
    const timeoutMs = parseDuration(o.timeout, `service ${name} timeout`);
    const keepAliveMs = parseDuration(o.keepAlive, `service ${name} keepAlive`);
    const ejectMs = parseDuration(o.ejectFor, `service ${name} ejectFor`);
    const maxEjectMs = Math.max(ejectMs, parseDuration(o.maxEjectFor, `service ${name} maxEjectFor`));
    if (!Number.isInteger(o.ejectAfter) || o.ejectAfter < 1) throw new TypeError(`service ${name} ejectAfter: expected a positive integer, got ${o.ejectAfter}`);
    const outlier: OutlierConfig = { ejectAfter: o.ejectAfter, ejectMs, maxEjectMs };
    this.timeoutMs = timeoutMs;
    this.panic = o.panic;
    this.runtime = o.runtime;
    let ca: string | undefined;
    if (options.tlsCa !== undefined) {
      try {
        ca = readFileSync(options.tlsCa, 'utf8');
      } catch (err) {
        throw new TypeError(`service ${name} tlsCa: cannot read ${options.tlsCa} (${(err as Error).message})`);
      }
    }
    this.upstreams = options.upstreams.map((url) => new Upstream(url, {
      connections: o.connections,
      keepAliveMs,
      timeoutMs,
      tlsVerify: o.tlsVerify,
      ca,
      health: new HealthTracker(options.health ?? {}),
      outlier: new OutlierTracker(outlier),
    }));
    if (options.health?.path !== undefined) this.startHealthChecks(options.health);
  }

  /**
   * The next instance, or undefined when none may be used. In order of
   * preference: in rotation and not in `avoid` (origins this request already
   * tried); in rotation; then, in panic mode, out of rotation and not in
   * `avoid`; out of rotation.
   */
  pick(avoid?: readonly string[]): Upstream | undefined {
    const list = this.upstreams;
    const n = list.length;
    // No ejection in force (the usual case): no clock read, and `now` past
    // every instance's `ejectedUntil`.
    let now = Infinity;
    if (this.outUntil !== -Infinity) {
      now = this.runtime.now();
      if (now >= this.outUntil) this.outUntil = -Infinity;
    }
    if (n === 1) {
      const u = list[0]!;
      return this.panic || (u.health.healthy && !u.outlier.ejected(now)) ? u : undefined;
    }
    const avoiding = avoid !== undefined && avoid.length > 0;
    let best: Upstream | undefined;
    let bestRank = 4;
    for (let i = 0; i < n; i++) {
      const index = (this.next + i) % n;
      const u = list[index]!;
      const out = !u.health.healthy || u.outlier.ejected(now);
      const avoided = avoiding && avoid.includes(u.origin);
      if (!out && !avoided) {
        this.next = (index + 1) % n;
        return u;
      }
      const rank = (out ? 2 : 0) + (avoided ? 1 : 0);
      if (rank < bestRank) {
        best = u;
        bestRank = rank;
      }
    }
    if (bestRank >= 2 && !this.panic) return undefined;
    return best;
  }

  /**
   * `upstream` refused a connection or timed out (forward reports it): one
   * more strike towards ejecting it.
   */
  failed(upstream: Upstream): void {
    const until = upstream.outlier.failure(this.runtime.now());
    if (until !== null && until > this.outUntil) this.outUntil = until;
  }

  /** Whether `upstream` is in rotation now (healthy and not ejected). */
  inRotation(upstream: Upstream): boolean {
    return upstream.health.healthy && !upstream.outlier.ejected(this.runtime.now());
  }

  private startHealthChecks(options: HealthOptions): void {
    const intervalMs = parseDuration(options.interval ?? '5s', `service ${this.name} health.interval`);
    if (intervalMs <= 0) throw new TypeError(`service ${this.name} health.interval: expected a positive duration`);
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
    // The periodic probes start at a random phase within the first interval,
    // so gateways (and services) started together do not probe in lockstep.
    const runtime = this.runtime;
    const timers = new Subscription();
    timers.add(after(runtime, runtime.random() * intervalMs, () => {
      probe();
      timers.add(every(runtime, intervalMs, probe));
    }));
    this.healthTimer = timers;
  }

  async close(): Promise<void> {
    this.healthTimer?.unsubscribe();
    this.healthTimer = null;
    await Promise.all(this.upstreams.map((u) => u.pool.close().catch(() => u.pool.destroy())));
  }
}
