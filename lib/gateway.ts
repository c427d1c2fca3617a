import { of, type Observable } from 'rxjs';
import { BufferedBody } from './body.ts';
import { Edge, type EdgeHooks } from './server/edge.ts';
import { EdgeLimits, type LimitsOptions } from './server/limits.ts';
import { RouteTable, type GatewayRoute } from './router/table.ts';
import { createLogger, type Logger } from './observe/log.ts';
import { GatewayMetrics } from './observe/metrics.ts';
import { RequestMetrics } from './observe/request-metrics.ts';
import type { RequestObservers } from './observe/request-log.ts';
import type { GatewayRequest, GatewayResponse } from './types.ts';
import { healthReport, type HealthReport } from './upstream/health-view.ts';
import type { Service } from './upstream/service.ts';

/** The aggregated health view: 200 when every service has an instance in rotation, else 503. */
export const HEALTH_PATH = '/__rxgate/health';
/** Liveness: 200 while the process serves requests, whatever the upstreams do. */
export const LIVE_PATH = '/__rxgate/live';

export type { GatewayRoute } from './router/table.ts';

export interface GatewayOptions {
  /** @default '0.0.0.0' */
  host?: string;
  /** 0 picks a free port. @default 8080 */
  port?: number;
  routes: readonly GatewayRoute[];
  /** Services to close with the gateway. */
  services?: readonly Service[];
  logger?: Logger;
  metrics?: GatewayMetrics;
  /** Runs after the server and services are closed (Redis clients…). */
  onClose?: () => Promise<void>;
  /** Awaited before listening (e.g. waiting briefly for Redis to connect). */
  beforeListen?: () => Promise<void>;
  /** The health view's content. @default a report over `services` */
  health?: () => HealthReport;
  /** Head, target, body-idle and per-client limits (`limits:`; trustedProxies for the client address). @default limitsDefaults */
  limits?: LimitsOptions;
  /** Per-request hooks for the access log and tracing (`requestObservers`). @default none */
  observers?: RequestObservers;
}

/** A running gateway: the uWS edge, the route table, metrics and logs. */
export class Gateway {
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  /** The routes served now; `replaceRoutes` swaps in a new table whole. */
  private table: RouteTable;
  private readonly edge: Edge;
  /** The access log's and tracing's hooks: `onRequest` here, `onFinish` on the edge's hooks. */
  private onRequest: RequestObservers['onRequest'];
  private readonly hooks: EdgeHooks;
  port = 0;

  constructor(private readonly options: GatewayOptions) {
    this.logger = options.logger ?? createLogger();
    this.metrics = options.metrics ?? new GatewayMetrics();
    this.table = new RouteTable(options.routes);
    const metrics = this.metrics;
    const answers = new RequestMetrics(metrics);
    this.hooks = {
      logger: this.logger,
      dispatch: (req) => this.dispatch(req),
      limits: new EdgeLimits(options.limits),
      onAnswer: (req, status, error) => answers.answered(req.locals.route ?? 'none', status, req.receivedAt, error, req.locals.cache),
      onClientAbort: () => metrics.clientAborts.inc(),
      onBroken: () => metrics.brokenResponses.inc(),
      endpoints: {
        [LIVE_PATH]: () => ({ contentType: 'application/json', body: '{"status":"ok"}' }),
        '/__rxgate/metrics': async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
      },
    };
    this.observe(options.observers ?? {});
    this.edge = new Edge(this.hooks);
  }

  /** Uses these access-log and tracing hooks from the next request on (a reload's config may change them). */
  observe(observers: RequestObservers): void {
    this.onRequest = observers.onRequest;
    if (observers.onFinish !== undefined) this.hooks.onFinish = observers.onFinish;
    else delete this.hooks.onFinish;
  }

  /** Routes one request and runs its route's pipeline. */
  dispatch(req: GatewayRequest): Observable<GatewayResponse> {
    this.onRequest?.(req);
    // The health view answers 503 too, which the edge's plain endpoints cannot.
    if (req.path === HEALTH_PATH) return this.healthView();
    return this.table.dispatch(req);
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
    this.table = new RouteTable(routes);
  }

  async listen(): Promise<number> {
    await this.options.beforeListen?.();
    this.port = await this.edge.listen(this.options.host ?? '0.0.0.0', this.options.port ?? 8080);
    this.logger.info({ host: this.options.host ?? '0.0.0.0', port: this.port, routes: this.table.size }, 'rxgate listening');
    return this.port;
  }

  async close(): Promise<void> {
    this.edge.close();
    await Promise.all((this.options.services ?? []).map((s) => s.close()));
    await this.options.onClose?.();
  }
}
