import { of, type Observable, type Observer, type Unsubscribable } from 'rxjs';
import { BufferedBody } from './body.ts';
import { Edge, type EdgeHooks } from './server/edge.ts';
import type { GatewayOptions } from './gateway-options.ts';
import { EdgeLimits } from './server/limits.ts';
import { capWebSocketForwards } from './server/websocket-options.ts';
import type { GatewayRoute, RouteTable } from './router/table.ts';
import { HostTable } from './router/hosts.ts';
import type { GatewayConfig } from './config/schema.ts';
import { showCertificateExpiries } from './observe/certificates.ts';
import { GatewayEvents } from './observe/events.ts';
import { createLogger, type Logger } from './observe/log.ts';
import { GatewayMetrics } from './observe/metrics.ts';
import { RequestMetrics } from './observe/request-metrics.ts';
import type { RequestObservers } from './observe/request-log.ts';
import type { GatewayRequest, GatewayResponse } from './types.ts';
import { healthReport, type HealthReport } from './upstream/health-view.ts';
import { after, systemRuntime, type Runtime } from './runtime.ts';
import type { CertificateExpiry } from './server/tls.ts';

/** The aggregated health view: 200 when every service has an instance in rotation, else 503. */
export const HEALTH_PATH = '/__rxgate/health';
/** Liveness: 200 while the process serves requests, whatever the upstreams do. */
export const LIVE_PATH = '/__rxgate/live';
/** Prometheus text on the public listener, only with `metrics: { public: true }` (else on the admin listener). */
export const PUBLIC_METRICS_PATH = '/__rxgate/metrics';

/** Where a gateway is in its life: `/ready` answers 200 only while `serving`. */
export type GatewayState = 'starting' | 'serving' | 'draining' | 'closed';

export type { GatewayRoute } from './router/table.ts';
export type { GatewayOptions } from './gateway-options.ts';

/** A running gateway: the uWS edge, the route table, metrics and logs. */
export class Gateway {
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly events: GatewayEvents;
  state: GatewayState = 'starting';
  /** The routes served now; `replaceRoutes` swaps in a new table whole. */
  private table: RouteTable | HostTable;
  private readonly edge: Edge;
  /** The access log's and tracing's hooks: `onRequest` here, `onFinish` on the edge's hooks. */
  private onRequest: RequestObservers['onRequest'];
  private readonly hooks: EdgeHooks;
  /** Reloads run one after the other. */
  private reloads: Promise<unknown> = Promise.resolve();
  port = 0;

  constructor(private readonly options: GatewayOptions) {
    this.logger = options.logger ?? createLogger();
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.events = options.events ?? new GatewayEvents();
    this.table = HostTable.of(options.routes);
    const metrics = this.metrics;
    const answers = new RequestMetrics(metrics);
    this.hooks = {
      logger: this.logger,
      ...(options.requestId !== undefined ? { requestId: options.requestId } : {}),
      dispatch: (req) => this.dispatch(req),
      start: (req, observer) => this.start(req, observer),
      // Its refusals (429, 414, 431) go out through the cors of the route the request would reach.
      limits: new EdgeLimits(options.limits, (req, err) => this.table.refuse(req, err)),
      onAnswer: (req, status, error, now) => {
        if (error !== null) req.locals.error = error.code;
        answers.answered(req.locals.route ?? 'none', status, req.receivedAt, error, req.locals.cache, now);
      },
      onHeadRefused: (req, status, error) => {
        req.locals.error = error.code;
        answers.refused(req.locals.route ?? 'none', status, error);
      },
      onClientAbort: () => metrics.clientAborts.inc(),
      onBroken: (req, error) => {
        req.locals.error = error.code;
        metrics.brokenResponses.inc();
      },
      endpoints: {
        [LIVE_PATH]: () => ({ contentType: 'application/json', body: '{"status":"ok"}' }),
        ...(options.publicMetrics === true ? { [PUBLIC_METRICS_PATH]: () => this.metricsText() } : {}),
      },
    };
    // The WebSocket forwards built for this gateway (on its events) are held to its limits.maxWebSocketMessage.
    capWebSocketForwards(this.events, this.hooks.limits!.maxWebSocketMessage);
    this.observe(options.observers ?? {});
    this.edge = new Edge(this.hooks, {
      ...(options.tls !== undefined ? { tls: options.tls } : {}),
      ...(options.redirectHttp !== undefined ? { redirectHttp: options.redirectHttp } : {}),
    });
    this.showCertificates();
  }

  /** The listener's certificates' expiry: gauge, and a warn or error line when one is near or past. */
  private showCertificates(): void {
    if (this.options.tls !== undefined) showCertificateExpiries(this.edge.tlsExpiries, this.metrics, this.logger, systemRuntime.wallNow());
  }

  /** The expiries of the certificates the listener serves: what a worker reports to its main thread. */
  get servedCertificates(): CertificateExpiry[] {
    return this.edge.tlsExpiries;
  }

  /**
   * Reads `listen.tls`'s certificate files again (on every reload). The
   * listener keeps the certificates it started with: uWS cannot swap them
   * in a running listener (docs/tls.md), so a changed or broken file is
   * logged, and changed ones serve after a restart (`tlsPending`). Never
   * throws. Does nothing without TLS.
   */
  reloadTls(): void {
    let swapped: boolean;
    try {
      swapped = this.edge.reloadTls();
    } catch (err) {
      this.logger.error({ err }, 'TLS certificate files are unreadable or invalid: the listener keeps the certificates it has');
      return;
    }
    // The gauge shows what serves: changed files the listener could not take over serve after a restart (tlsPending).
    if (swapped || this.edge.tlsPending.length === 0) this.showCertificates();
    if (swapped) {
      this.logger.info('TLS certificates reloaded: new connections get the new files, open ones finish on the old');
      return;
    }
    const pending = this.edge.tlsPending;
    if (pending.length > 0) this.logger.warn({ certificates: pending }, 'TLS certificate files changed, but a new listener could not share the port (listen.port 0?): they serve after a restart');
  }

  /** `listen.tls` entries whose files changed but could not be swapped in (they serve after a restart). */
  get tlsPending(): readonly string[] {
    return this.edge.tlsPending;
  }

  /** The port of `listen.redirectHttp`'s plain-HTTP listener once listening; null without one. */
  get redirectPort(): number | null {
    return this.edge.redirectPort;
  }

  /** Uses these access-log and tracing hooks from the next request on (a reload's config may change them). */
  observe(observers: RequestObservers): void {
    this.onRequest = observers.onRequest;
    // Assigned, never deleted: a deleted property would turn the per-request hooks object into a dictionary.
    this.hooks.onFinish = observers.onFinish;
  }

  /** Routes one request and runs its route's pipeline. */
  dispatch(req: GatewayRequest): Observable<GatewayResponse> {
    this.onRequest?.(req);
    // The health view answers 503 too, which the edge's plain endpoints cannot.
    if (req.path === HEALTH_PATH) return this.healthView();
    return this.table.dispatch(req);
  }

  /** `dispatch(req).subscribe(observer)`, without the route's Observable where its pipeline allows (`RouteTable.start`). */
  start(req: GatewayRequest, observer: Observer<GatewayResponse>): Unsubscribable | null {
    this.onRequest?.(req);
    if (req.path === HEALTH_PATH) return this.healthView().subscribe(observer);
    return this.table.start(req, observer);
  }

  /** The Prometheus exposition of this gateway's metrics (`GET /metrics` on the admin listener). */
  async metricsText(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() };
  }

  /** Listening and not draining: what `GET /ready` reports. */
  get ready(): boolean {
    return this.state === 'serving';
  }

  /** What `GET /__rxgate/health` shows now. */
  health(): HealthReport {
    return this.options.health?.() ?? healthReport(this.options.services ?? []);
  }

  private healthView(): Observable<GatewayResponse> {
    const report = this.health();
    return of({
      status: report.status === 'ok' ? 200 : 503,
      headers: ['content-type', 'application/json', 'cache-control', 'no-store'],
      body: BufferedBody.of(JSON.stringify(report)),
    });
  }

  /**
   * Serves `routes` from now on: a new table, swapped in whole. Requests in
   * flight finish on the pipeline they started with.
   */
  replaceRoutes(routes: readonly GatewayRoute[]): void {
    this.table = HostTable.of(routes);
  }

  /**
   * Serves `config`'s routes from now on, rebuilt against this gateway's
   * resources: services, breakers and stores whose config did not change are
   * the running ones. Requests in flight finish on the old routes; what only
   * those used is closed once they have. Throws (and keeps serving the old
   * routes) when a stage refuses its options. Reloads run one at a time.
   */
  reload(config: GatewayConfig): Promise<void> {
    const rebuild = this.options.rebuild;
    if (rebuild === undefined) return Promise.reject(new TypeError('this gateway was not built from a config, so it cannot reload one'));
    const run = this.reloads.then(async () => {
      const retire = await rebuild(config);
      void this.edge.settled().then(retire);
    });
    this.reloads = run.catch(() => undefined);
    return run;
  }

  async listen(): Promise<number> {
    await this.options.beforeListen?.();
    this.port = await this.edge.listen(this.options.host ?? '0.0.0.0', this.options.port ?? 8080);
    if (this.state === 'starting') this.state = 'serving';
    this.logger.info({ host: this.options.host ?? '0.0.0.0', port: this.port, routes: this.table.size }, 'rxgate listening');
    return this.port;
  }

  /**
   * Graceful stop: readiness turns false and the listen socket closes at
   * once; requests in flight (uploads and streams too) run until they end or
   * `timeoutMs` passes, then every connection closes (idle keep-alive ones
   * included), requests still running are cancelled, and the pools and Redis
   * clients close. Resolves `true` when nothing had to be cancelled.
   */
  async drain(timeoutMs: number, runtime: Runtime = systemRuntime): Promise<boolean> {
    if (this.state === 'closed') return true;
    this.state = 'draining';
    this.edge.stopListening();
    let timer: { unsubscribe(): void } | null = null;
    const deadline = new Promise<false>((resolve) => { timer = after(runtime, timeoutMs, () => resolve(false)); });
    const idle = await Promise.race([this.edge.idle().then(() => true), deadline]);
    (timer as { unsubscribe(): void } | null)?.unsubscribe();
    await this.close();
    return idle;
  }

  /** Stops at once: closes every connection, cancels requests under way, closes pools and Redis clients. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.edge.close();
    await Promise.all((this.options.services ?? []).map((s) => s.close()));
    await this.options.onClose?.();
  }
}
