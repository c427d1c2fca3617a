import { parseDuration } from '../duration.ts';
import type { GatewayEvents } from '../observe/events.ts';
import type { Runtime } from '../runtime.ts';
import type { GatewayRequest } from '../types.ts';
import type { Deadlines } from '../stages/timeout/deadlines.ts';
import { balancerFactory, balancerNames, type Balancer } from './balancer.ts';
import './balancers.ts';
import { startDiscovery, type Discovery } from './discovery.ts';
import './dns-discovery.ts';
import { serviceDeadlines } from './exchange-deadline.ts';
import { HealthTracker, type HealthOptions } from './health.ts';
import { OutlierTracker, type OutlierConfig } from './outlier.ts';
import { startProbes, type Probes } from './probe.ts';
import { checkCounts, serviceDefaults, type ServiceOptions, type UpstreamSpec } from './service-options.ts';
import { Upstream, type UpstreamSettings } from './upstream.ts';
import { upstreamConnect, type UpstreamTls } from './upstream-tls.ts';

export { Upstream, type ServiceOptions, type UpstreamSpec };

/** The latency a failed request counts as, at least (see `answered`). */
const FAILURE_PENALTY_MS = 1000; // 1s

/**
 * A named upstream service: its instances and the balancer that picks one
 * per attempt among those it may use (see `pick`); it keeps each instance's
 * load (in flight, peak-EWMA latency), its passive ejection and its active
 * health checks.
 */
export class Service {
  /** The instances now (replaced whole when discovery changes them). */
  upstreams: readonly Upstream[];
  readonly timeoutMs: number;
  /** The timeout on every request's head and body gaps, one timer for all (exchange-deadline.ts); null for 0. */
  readonly deadlines: Deadlines | null;
  /** Whether `pick` falls back to an instance out of rotation when none is in. */
  readonly panic: boolean;
  /** The balancer's name, as configured (or the default). */
  readonly balancerName: string;
  readonly balancer: Balancer;
  readonly runtime: Runtime;
  /** 1 for each status that is a strike towards ejection (`ejectOnStatuses`). */
  readonly strikeStatus = new Uint8Array(600);
  private readonly settings: Omit<UpstreamSettings, 'health' | 'outlier' | 'weight' | 'id'>;
  /** The service's TLS as a connector, for `wss://` instances of a websocket route (ws-connect.ts). */
  readonly tlsConnector: UpstreamTls['connector'];
  private readonly outlierConfig: OutlierConfig;
  private readonly maxEjectionPercent: number;
  private readonly healthOptions: HealthOptions;
  private readonly events: GatewayEvents | null;
  private nextId = 0;
  /** Reused by every `pick` (nothing per request). */
  private readonly candidates: Upstream[] = [];
  /** The latest `ejectedUntil` of any instance: until then `pick` looks at the clock. */
  private outUntil = -Infinity;
  private healthTimer: Probes | null = null;
  /** Sees each answer's time to the head, ms, and whether it failed (metrics set it); null: nobody. */
  latencyObserver: ((upstream: Upstream, ms: number, ok: boolean) => void) | null = null;
  /** Sees each upstream response head's status (metrics count them by class); null: nobody. */
  statusObserver: ((upstream: Upstream, status: number) => void) | null = null;

  constructor(readonly name: string, options: ServiceOptions) {
    const discovery = Object.entries(options.discovery ?? {});
    if (!Array.isArray(options.upstreams) || (options.upstreams.length === 0 && discovery.length === 0)) {
      throw new TypeError(`service ${name}: needs at least one upstream URL, or discovery`);
    }
    const o = { ...serviceDefaults, ...options };
    const timeoutMs = parseDuration(o.timeout, `service ${name} timeout`);
    const keepAliveMs = parseDuration(o.keepAlive, `service ${name} keepAlive`);
    const ejectMs = parseDuration(o.ejectFor, `service ${name} ejectFor`);
    const maxEjectMs = Math.max(ejectMs, parseDuration(o.maxEjectFor, `service ${name} maxEjectFor`));
    checkCounts(name, o);
    if (!(o.maxEjectionPercent >= 0 && o.maxEjectionPercent <= 100)) throw new TypeError(`service ${name} maxEjectionPercent: expected 0 to 100, got ${o.maxEjectionPercent}`);
    this.outlierConfig = { ejectAfter: o.ejectAfter, ejectMs, maxEjectMs };
    this.maxEjectionPercent = o.maxEjectionPercent;
    for (const status of options.ejectOnStatuses ?? []) this.strikeStatus[status] = 1;
    this.timeoutMs = timeoutMs;
    this.deadlines = serviceDeadlines(timeoutMs);
    this.panic = o.panic;
    this.runtime = o.runtime;
    this.events = options.events ?? null;
    this.healthOptions = options.health ?? {};
    new HealthTracker(this.healthOptions); // bad thresholds throw here
    const tls = upstreamConnect(name, options);
    this.tlsConnector = tls.connector;
    this.settings = { connections: o.connections, maxPending: o.maxPending, keepAliveMs, timeoutMs, connect: tls.connect };
    this.balancerName = options.balancer ?? (options.upstreams.length > 1 || discovery.length > 0 ? 'p2c-ewma' : 'round-robin');
    const factory = balancerFactory(this.balancerName);
    if (factory === undefined) throw new TypeError(`service ${name} balancer: unknown balancer ${JSON.stringify(this.balancerName)} (known: ${balancerNames().join(', ')})`);
    this.balancer = factory({ service: name, runtime: this.runtime, options: this.balancerName === 'hash' ? options.hash : options.balancerOptions });
    this.upstreams = options.upstreams.map((spec) => this.instance(spec));
    this.balancer.update?.(this.upstreams);
    this.discovered = startDiscovery(discovery, { service: name, runtime: this.runtime }, this.sources, (specs) => this.setUpstreams(specs), (kind, err, what) => {
      this.events?.emit('degraded', { reason: 'discovery', message: `service ${name}: ${kind} discovery ${what ?? 'failed'}`, err });
    });
    if (options.health?.path !== undefined) {
      this.healthTimer = startProbes(name, options.health, this.runtime, () => this.upstreams, (u) => {
        this.events?.emit('upstreamHealth', { service: name, instance: u.url, healthy: u.health.healthy });
      });
    }
  }

  /** Settles once every discovery source has answered once (at once without discovery). */
  readonly discovered: Promise<void>;
  private readonly sources: Discovery[] = [];

  /** Makes an instance of this service from its spec, checked at once on a running service with health checks; one `joining` is out until its first check passes. */
  protected instance(spec: UpstreamSpec, joining = false): Upstream {
    const url = typeof spec === 'string' ? spec : spec.url;
    const weight = typeof spec === 'string' ? 1 : spec.weight ?? 1;
    const health = new HealthTracker(this.healthOptions, joining);
    const u = new Upstream(url, { ...this.settings, weight, id: this.nextId++, health, outlier: new OutlierTracker(this.outlierConfig) });
    this.healthTimer?.check(u); // joining or not (review RC D5: a replacement took traffic until the next round)
    return u;
  }

  /**
   * The instance for this attempt, or undefined when none may be used. The
   * balancer chooses among the best tier of instances: in rotation and not
   * in `avoid` (origins this request already tried); else in rotation; then,
   * in panic mode, out of rotation and not in `avoid`; else out of rotation.
   */
  pick(avoid?: readonly string[], req: GatewayRequest | null = null): Upstream | undefined {
    const list = this.upstreams;
    const n = list.length;
    // No ejection in force (the usual case): no clock read, and `now` past
    // every instance's `ejectedUntil`.
    let now = Infinity;
    if (this.outUntil !== -Infinity) {
      now = this.runtime.now();
      if (now >= this.outUntil) this.outUntil = -Infinity;
    }
    if (n <= 1) {
      if (n === 0) return undefined; // discovery has found none yet
      const u = list[0]!;
      return this.panic || (u.health.healthy && !u.outlier.ejected(now)) ? u : undefined;
    }
    const avoiding = avoid !== undefined && avoid.length > 0;
    const c = this.candidates;
    c.length = 0;
    let tier = 4;
    for (let i = 0; i < n; i++) {
      const u = list[i]!;
      const rank = (!u.health.healthy || u.outlier.ejected(now) ? 2 : 0) + (avoiding && avoid.includes(u.origin) ? 1 : 0);
      if (rank < tier) {
        tier = rank;
        c.length = 0;
      }
      if (rank === tier) c.push(u);
    }
    if (tier >= 2 && !this.panic) return undefined;
    const picked = c.length === 1 ? c[0]! : this.balancer.pick(c, req);
    c.length = 0;
    return picked;
  }

  /** A request is about to go to `upstream`: returns the clock time it went, for `answered`. */
  started(upstream: Upstream): number {
    upstream.inFlight++;
    return this.runtime.now();
  }

  /** `upstream` sent a response head (ok) or failed, for a request `started` at `since`. */
  answered(upstream: Upstream, since: number, ok: boolean): void {
    const now = this.runtime.now();
    // A failure costs at least a second of latency: a refused connection is
    // fast, and must not make a dead instance look like the best one.
    const ms = ok ? now - since : Math.max(now - since, FAILURE_PENALTY_MS);
    upstream.observe(ms, now);
    this.balancer.observe?.(upstream, ms, ok);
    if (this.latencyObserver !== null) this.latencyObserver(upstream, now - since, ok);
  }

  /** A request `started` at `since` was cancelled before its head: it took at least this long. */
  abandoned(upstream: Upstream, since: number): void {
    const now = this.runtime.now();
    if (now - since > upstream.latency(now)) upstream.observe(now - since, now);
  }

  /** A request `started` on `upstream` is over (completed, failed or cancelled). */
  finished(upstream: Upstream): void {
    upstream.inFlight--;
    if (upstream.draining && upstream.inFlight === 0) void upstream.close();
  }

  /**
   * `upstream` refused a connection or timed out (forward reports it): one
   * more strike towards ejecting it, unless `maxEjectionPercent` of the
   * instances are out already.
   */
  failed(upstream: Upstream): void {
    const now = this.runtime.now();
    const until = upstream.outlier.failure(now, this.mayEject(upstream, now));
    if (until === null) return;
    if (until > this.outUntil) this.outUntil = until;
    this.events?.emit('upstreamEjected', { service: this.name, instance: upstream.url, forMs: Math.round(until - now), ejections: upstream.outlier.ejections });
  }

  private mayEject(upstream: Upstream, now: number): boolean {
    const list = this.upstreams;
    let out = 0;
    for (let i = 0; i < list.length; i++) if (list[i] !== upstream && list[i]!.outlier.ejected(now)) out++;
    return out + 1 <= Math.max(1, Math.floor(list.length * this.maxEjectionPercent / 100));
  }

  /** Whether `upstream` is in rotation now (healthy and not ejected). */
  inRotation(upstream: Upstream): boolean {
    return upstream.health.healthy && !upstream.outlier.ejected(this.runtime.now());
  }

  /** Whether some instance is in rotation now (the health view's verdict). */
  usable(): boolean {
    return this.upstreams.some((u) => this.inRotation(u));
  }

  /**
   * Replaces the instances with `specs` (discovery): instances whose URL and
   * weight stay keep their state; new ones join; removed ones leave rotation
   * at once and close their pool once their requests in flight are done.
   */
  setUpstreams(specs: readonly UpstreamSpec[]): void {
    if (specs.length === 0) return; // an empty answer is a discovery hiccup, not an empty service
    const old = new Map(this.upstreams.map((u) => [`${u.url} ${u.weight}`, u]));
    const keys = specs.map((spec) => (typeof spec === 'string' ? `${spec} 1` : `${spec.url} ${spec.weight ?? 1}`));
    // New ones wait for a check only while a kept one serves (all replaced or re-weighted: in rotation at once).
    const joining = this.healthTimer !== null && keys.some((k) => {
      const u = old.get(k);
      return u !== undefined && this.inRotation(u);
    });
    const next = specs.map((spec, i) => {
      const kept = old.get(keys[i]!);
      old.delete(keys[i]!);
      return kept ?? this.instance(spec, joining);
    });
    this.upstreams = next;
    this.balancer.update?.(next);
    for (const u of old.values()) {
      u.draining = true;
      if (u.inFlight === 0) void u.close();
    }
  }

  async close(): Promise<void> {
    for (const d of this.sources) d.stop();
    this.healthTimer?.unsubscribe();
    this.healthTimer = null;
    await Promise.all(this.upstreams.map((u) => u.close()));
    // The deadline list stays: requests on retired instances (not awaited) keep their timeout; its timer is unref'd.
  }
}
