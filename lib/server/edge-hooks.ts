import type { Observable, Observer, Unsubscribable } from 'rxjs';
import type { GatewayError } from '../errors.ts';
import type { Logger } from '../observe/log.ts';
import type { GatewayRequest, GatewayResponse } from '../types.ts';
import type { EdgeLimits } from './limits.ts';
import type { RedirectHttpOptions } from './redirect-http.ts';
import type { RequestIdKind } from './request-id.ts';
import type { ListenTlsOptions } from './tls.ts';

/** What the edge (edge.ts) calls: the gateway's side of each request. */
export interface EdgeHooks {
  /** Runs the request through routing and the route's pipeline. */
  dispatch(req: GatewayRequest): Observable<GatewayResponse>;
  /**
   * `dispatch(req).subscribe(observer)`, without building the route's
   * Observable where its pipeline allows (a route that only forwards).
   * Returns what stops the request; null when it is already over.
   */
  start?(req: GatewayRequest, observer: Observer<GatewayResponse>): Unsubscribable | null;
  /** Called once per request when its answer is decided (head or error), for metrics; `now` is `performance.now()` then. */
  onAnswer?(req: GatewayRequest, status: number, error: GatewayError | null, now: number): void;
  /** A head answered under `status` (onAnswer) that the writer refused and answered 500 (`error`) in its place: for metrics. */
  onHeadRefused?(req: GatewayRequest, status: number, error: GatewayError): void;
  onClientAbort?(req: GatewayRequest): void;
  onBroken?(req: GatewayRequest, error: GatewayError): void;
  /**
   * Called once per request when its exchange ends (response sent, client
   * gone, or connection dropped), for the access log and the server span.
   * `kind`: 0 finished, 1 the client went away, 2 dropped mid-response.
   */
  onFinish?: ((req: GatewayRequest, status: number, bytesIn: number, bytesOut: number, kind: 0 | 1 | 2) => void) | undefined;
  /** Extra GET endpoints (`/__rxgate/health`, `/__rxgate/metrics`). */
  endpoints?: Record<string, () => Promise<{ contentType: string; body: string }> | { contentType: string; body: string }>;
  logger: Logger;
  /** Head, target, body-idle and per-client limits (`limits:`, lib/server/limits.ts); none when absent. */
  limits?: EdgeLimits;
  /** How a request without `X-Request-Id` gets one (request-id.ts). @default 'counter' */
  requestId?: RequestIdKind;
}

/** How the edge listens, beyond host and port. */
export interface EdgeListenOptions {
  /** Serve HTTPS with these certificates (uWS `SSLApp`). */
  tls?: ListenTlsOptions;
  /** Also listen on plain HTTP, redirecting every request to HTTPS (needs `tls`). */
  redirectHttp?: RedirectHttpOptions;
}

