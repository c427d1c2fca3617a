import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Gateway, GatewayState } from '../gateway.ts';
import type { ReloadResult } from '../lifecycle/reload.ts';
import type { HealthReport } from '../upstream/health-view.ts';
import type { Logger } from '../observe/log.ts';
import type { AdminAnswer, AdminHandler, AdminRequest } from './types.ts';
import { ListenError } from '../server/listen-error.ts';

/** What the admin listener's own paths read: one gateway, or (workers mode) the main thread's view of its workers. */
export interface AdminSource {
  /** The Prometheus exposition. */
  metrics(): Promise<{ contentType: string; body: string }>;
  health(): HealthReport | Promise<HealthReport>;
  /** `/ready` answers 200 only while this is `serving`. */
  state(): GatewayState;
  /** Reloads the config (`POST /reload`); null: started without a config file. */
  reload: (() => Promise<ReloadResult>) | null;
}

/** A gateway as the admin listener sees it. */
export function gatewaySource(gateway: Gateway, reload: (() => Promise<ReloadResult>) | null): AdminSource {
  return { metrics: () => gateway.metricsText(), health: () => gateway.health(), state: () => gateway.state, reload };
}

const JSON_TYPE = 'application/json';
/** Said once at start when the admin listener is reachable off the host: it has no authentication. */
export const OPEN_ADMIN = 'rxgate admin listener is on a non-loopback address and has no authentication: anyone who reaches this port can read /metrics and /api/overview (upstream addresses) and POST /reload; restrict it (a NetworkPolicy, a firewall) or use 127.0.0.1';

/** `127.0.0.0/8`, `::1`, `localhost` (and IPv4-mapped loopback): the admin listener is not reachable off the host. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}
const LIVE: AdminAnswer = { status: 200, contentType: JSON_TYPE, body: '{"status":"ok"}' };

/**
 * The admin listener's own paths: `GET /metrics` (Prometheus text),
 * `GET /health` (the aggregated health JSON, 200 or 503), `GET /ready` (200
 * while serving, 503 before listening and once draining), `GET /live` (200
 * whenever the process answers at all: for liveness probes, no work) and `POST /reload`
 * (200 applied, 422 refused with the key path). Keys are `METHOD /path`.
 */
export function adminRoutes(source: AdminSource): Record<string, AdminHandler> {
  return {
    'GET /metrics': async () => {
      const { contentType, body } = await source.metrics();
      return { status: 200, contentType, body };
    },
    'GET /health': async () => {
      const report = await source.health();
      return { status: report.status === 'ok' ? 200 : 503, contentType: JSON_TYPE, body: JSON.stringify(report) };
    },
    'GET /ready': () => {
      const state = source.state();
      return { status: state === 'serving' ? 200 : 503, contentType: JSON_TYPE, body: JSON.stringify({ status: state === 'serving' ? 'ready' : state }) };
    },
    'GET /live': () => LIVE,
    'POST /reload': async () => {
      if (source.reload === null) return { status: 409, contentType: JSON_TYPE, body: '{"outcome":"refused","message":"started without a config file: nothing to reload"}' };
      const result = await source.reload();
      return { status: result.outcome === 'applied' ? 200 : 422, contentType: JSON_TYPE, body: JSON.stringify(result) };
    },
  };
}

export interface AdminListenerOptions {
  host: string;
  port: number;
  /**
   * Handlers by `METHOD /path` (or by `/path`, for GET); a key ending in
   * `/*` serves every path under it (`GET /api/*`).
   */
  routes: Record<string, AdminHandler>;
  logger: Logger;
}

/**
 * The admin listener: a node:http server on its own host and port (off the
 * public listener and off the hot path), for operators and probes. HEAD is
 * answered as GET without the body.
 */
export class AdminListener {
  private readonly server: Server;
  private readonly exact = new Map<string, AdminHandler>();
  private readonly prefixes: Array<[string, AdminHandler]> = [];
  port = 0;

  constructor(private readonly options: AdminListenerOptions) {
    for (const [key, handler] of Object.entries(options.routes)) {
      const full = key.startsWith('/') ? `GET ${key}` : key;
      if (full.endsWith('/*')) this.prefixes.push([full.slice(0, -1), handler]);
      else this.exact.set(full, handler);
    }
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5000;
  }

  listen(): Promise<number> {
    const { host, port } = this.options;
    return new Promise((resolve, reject) => {
      const refused = (err: Error): void => reject(new ListenError(`rxgate admin listener could not listen on ${host}:${port}: ${err.message}`));
      this.server.once('error', refused);
      this.server.listen(port, host, () => {
        this.server.off('error', refused);
        this.port = (this.server.address() as AddressInfo).port;
        this.options.logger.info({ host: this.options.host, port: this.port }, 'rxgate admin listening');
        if (!isLoopback(host)) this.options.logger.warn({ host, port: this.port }, OPEN_ADMIN);
        resolve(this.port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The handler, or for a path with handlers for other methods only, those methods (the 405's `Allow`). */
  private find(method: string, path: string): AdminHandler | { allow: string } | null {
    const key = `${method} ${path}`;
    const found = this.exact.get(key) ?? this.prefixes.find(([prefix]) => key.startsWith(prefix))?.[1];
    if (found !== undefined) return found;
    const methods = [...this.exact.keys()].filter((k) => k.slice(k.indexOf(' ') + 1) === path).map((k) => k.slice(0, k.indexOf(' ')));
    if (methods.length === 0) return null;
    return { allow: (methods.includes('GET') ? [...methods, 'HEAD'] : methods).join(', ') };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const request: AdminRequest = {
      method: req.method ?? 'GET',
      path: q === -1 ? url : url.slice(0, q),
      query: q === -1 ? '' : url.slice(q + 1),
    };
    const head = request.method === 'HEAD';
    const handler = this.find(head ? 'GET' : request.method, request.path);
    let answer: AdminAnswer;
    if (handler === null) answer = { status: 404, contentType: JSON_TYPE, body: '{"error":"not found"}' };
    else if (typeof handler !== 'function') answer = { status: 405, contentType: JSON_TYPE, body: '{"error":"method not allowed"}', headers: { allow: handler.allow } };
    else {
      try {
        answer = await handler(request);
      } catch (err) {
        this.options.logger.error({ err, path: request.path }, 'admin handler failed');
        answer = { status: 500, contentType: JSON_TYPE, body: '{"error":"internal error"}' };
      }
    }
    // The admin listener never needs the request body (POST /reload takes none).
    req.resume();
    res.writeHead(answer.status, { ...answer.headers, 'content-type': answer.contentType, 'cache-control': 'no-store' });
    res.end(head ? undefined : answer.body);
  }
}
