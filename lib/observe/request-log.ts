import type { GatewayConfig } from '../config/schema.ts';
import type { GatewayRequest } from '../types.ts';
import { AccessLog, type FinishKind } from './access-log.ts';
import type { Logger } from './log.ts';
import type { Tracing } from './tracing.ts';

/** What the gateway calls per request for logs and traces (`GatewayOptions.onRequest` / `onFinish`). */
export interface RequestObservers {
  /** At dispatch, before routing. */
  onRequest?: (req: GatewayRequest) => void;
  /** Once, when the exchange has ended (the response sent, the client gone, or the connection dropped). */
  onFinish?: (req: GatewayRequest, status: number, bytesIn: number, bytesOut: number, kind: FinishKind) => void;
}

/**
 * The per-request hooks for an access log and tracing, each left out when
 * it has nothing to do, so a gateway with neither pays for no call.
 */
export function requestObservers(access: AccessLog | null, tracing: Tracing | null): RequestObservers {
  const out: RequestObservers = {};
  const traced = tracing !== null && tracing.tracer !== null ? tracing : null;
  if (access !== null || traced !== null) {
    // `attempts` set marks the request as observed: forward then records its attempts.
    out.onRequest = tracing === null
      ? (req) => { req.locals.attempts = 0; }
      : (req) => {
        req.locals.attempts = 0;
        tracing.begin(req);
      };
  } else if (tracing !== null) out.onRequest = (req) => tracing.begin(req);
  if (access !== null && traced !== null) {
    out.onFinish = (req, status, bytesIn, bytesOut, kind) => {
      traced.end(req, status, kind);
      access.finish(req, status, bytesIn, bytesOut, kind);
    };
  } else if (access !== null) {
    out.onFinish = (req, status, bytesIn, bytesOut, kind) => access.finish(req, status, bytesIn, bytesOut, kind);
  } else if (traced !== null) {
    out.onFinish = (req, status, _in, _out, kind) => traced.end(req, status, kind);
  }
  return out;
}

/** The hooks a config asks for: its `log` keys (top-level and per route) and `tracing`. */
export function observersFor(config: GatewayConfig, logger: Logger, tracing: Tracing | null): RequestObservers {
  const routes = config.routes.map((r) => ({ name: r.name ?? r.path, access: r.log?.access }));
  const access = AccessLog.create({ logger, ...AccessLog.optionsOf(config.log, routes) });
  return requestObservers(access, tracing);
}
