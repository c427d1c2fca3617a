import { performance } from 'node:perf_hooks';
import { throwError, type Observable } from 'rxjs';
import { Edge } from './server/edge.ts';
import { Router, type RouteRewrite } from './router/router.ts';
import { createLogger, type Logger } from './observe/log.ts';
import { GatewayMetrics } from './observe/metrics.ts';
import type { GatewayRequest, GatewayResponse, Handler } from './types.ts';
import type { Service } from './upstream/service.ts';

export interface GatewayRoute {
  /** Name used in metrics and logs. @default the path */
  name?: string;
  /** `/exact`, `/users/:id`, or a prefix `/api/*`. */
  path: string;
  methods?: readonly string[];
  rewrite?: RouteRewrite;
  /** The route's pipeline, e.g. `compose(jwtAuth(…), retry())(forward(users))`. */
  handler: Handler;
}

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
}

interface RouteEntry {
  name: string;
  handler: Handler;
}

/** A running gateway: the uWS edge, the route table, metrics and logs. */
export class Gateway {
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  private readonly router = new Router<RouteEntry>();
  private readonly edge: Edge;
  private readonly answered = new Map<string, { requests: Array<{ inc(): void }>; duration: { observe(v: number): void } }>();
  port = 0;

  constructor(private readonly options: GatewayOptions) {
    this.logger = options.logger ?? createLogger();
    this.metrics = options.metrics ?? new GatewayMetrics();
    for (const route of options.routes) {
      this.router.add({
        path: route.path,
        value: { name: route.name ?? route.path, handler: route.handler },
        ...(route.methods !== undefined ? { methods: route.methods } : {}),
        ...(route.rewrite !== undefined ? { rewrite: route.rewrite } : {}),
      });
    }
    const metrics = this.metrics;
    this.edge = new Edge({
      logger: this.logger,
      dispatch: (req) => this.dispatch(req),
      onAnswer: (req, status, error) => {
        // Label children cached per route and status class: prom-client
        // hashes a label object on every inc(), and this runs per request.
        const route = req.locals.route ?? 'none';
        let children = this.answered.get(route);
        if (children === undefined) {
          children = { requests: [], duration: metrics.duration.labels(route) };
          this.answered.set(route, children);
        }
        const cls = (status / 100) | 0;
        (children.requests[cls] ??= metrics.requests.labels(route, `${cls}xx`)).inc();
        children.duration.observe((performance.now() - req.receivedAt) / 1000);
        if (error !== null) metrics.errors.inc({ code: error.code });
      },
      onClientAbort: () => metrics.clientAborts.inc(),
      onBroken: () => metrics.brokenResponses.inc(),
      endpoints: {
        '/__rxgate/health': () => ({ contentType: 'application/json', body: '{"status":"ok"}' }),
        '/__rxgate/metrics': async () => ({ contentType: metrics.registry.contentType, body: await metrics.registry.metrics() }),
      },
    });
  }

  /** Routes one request and runs its route's pipeline. */
  dispatch(req: GatewayRequest): Observable<GatewayResponse> {
    let match;
    try {
      match = this.router.match(req.method, req.normalizedPath);
    } catch (err) {
      return throwError(() => err);
    }
    const route = match.route;
    req.params = match.params;
    req.locals.route = route.value.name;
    if (route.rewrite !== null) req.path = route.rewrite(req.path);
    return route.value.handler(req);
  }

  async listen(): Promise<number> {
    await this.options.beforeListen?.();
    this.port = await this.edge.listen(this.options.host ?? '0.0.0.0', this.options.port ?? 8080);
    this.logger.info({ host: this.options.host ?? '0.0.0.0', port: this.port, routes: this.router.size }, 'rxgate listening');
    return this.port;
  }

  async close(): Promise<void> {
    this.edge.close();
    await Promise.all((this.options.services ?? []).map((s) => s.close()));
    await this.options.onClose?.();
  }
}
