import type { GatewayConfig } from './config/schema.ts';
import type { GatewayEvents } from './observe/events.ts';
import type { Logger } from './observe/log.ts';
import type { GatewayMetrics } from './observe/metrics.ts';
import type { RequestObservers } from './observe/request-log.ts';
import type { GatewayRoute } from './router/table.ts';
import type { LimitsOptions } from './server/limits.ts';
import type { RedirectHttpOptions } from './server/redirect-http.ts';
import type { RequestIdKind } from './server/request-id.ts';
import type { ListenTlsOptions } from './server/tls.ts';
import type { HealthReport } from './upstream/health-view.ts';
import type { Service } from './upstream/service.ts';

/** What a `Gateway` (gateway.ts) is built from. */
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
  /** How a request without `X-Request-Id` gets one (YAML `requestId`). @default 'counter' */
  requestId?: RequestIdKind;
  /** The event bus its stages publish on (a reload publishes `reload` there). @default a new one */
  events?: GatewayEvents;
  /** Serve `GET /__rxgate/metrics` on the public listener too. @default false */
  publicMetrics?: boolean;
  /**
   * Builds the routes of a later config against this gateway's resources and
   * swaps them in; resolves to what closes the resources only the old routes
   * used. Given by `buildGateway`; without it `reload` refuses.
   */
  rebuild?: (config: GatewayConfig) => Promise<() => Promise<void>>;
  /** Per-request hooks for the access log and tracing (`requestObservers`). @default none */
  observers?: RequestObservers;
  /** Serve HTTPS with these certificates (`listen.tls`). */
  tls?: ListenTlsOptions;
  /** A plain-HTTP listener redirecting to HTTPS (`listen.redirectHttp`; needs `tls`). */
  redirectHttp?: RedirectHttpOptions;
  /** Head, target, body-idle and per-client limits (`limits:`; trustedProxies for the client address). @default limitsDefaults */
  limits?: LimitsOptions;
}

