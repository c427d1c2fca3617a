import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Observable, Subscription } from 'rxjs';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket } from 'uWebSockets.js';
import { BadRequestError, errorResponseBody, toGatewayError, type GatewayError } from '../errors.ts';
import { NON_ASCII } from '../headers.ts';
import { normalizePath } from '../router/normalize.ts';
import type { Logger } from '../observe/log.ts';
import type { GatewayRequest, GatewayResponse } from '../types.ts';
import { UwsRequestBody } from './request-body.ts';
import { ResponseWriter } from './response-writer.ts';
import { loadUws } from './uws.ts';

/** Attempt 1 has tried nothing yet (shared: it is never written to). */
const NO_ORIGINS: readonly string[] = [];

export interface EdgeHooks {
  /** Runs the request through routing and the route's pipeline. */
  dispatch(req: GatewayRequest): Observable<GatewayResponse>;
  /** Called once per request when its answer is decided (head or error), for metrics. */
  onAnswer?(req: GatewayRequest, status: number, error: GatewayError | null): void;
  onClientAbort?(req: GatewayRequest): void;
  onBroken?(req: GatewayRequest, error: GatewayError): void;
  /** Extra GET endpoints (`/__rxgate/health`, `/__rxgate/metrics`). */
  endpoints?: Record<string, () => Promise<{ contentType: string; body: string }> | { contentType: string; body: string }>;
  logger: Logger;
}

const JSON_HEADERS = ['content-type', 'application/json'];

/**
 * The uWebSockets.js edge: turns each uWS request into a `GatewayRequest`,
 * subscribes to its pipeline, writes what it emits, and unsubscribes when the
 * client goes away (`onAborted`), which aborts the upstream request. The one
 * place where errors become responses.
 */
export class Edge {
  readonly app: TemplatedApp;
  private listenSocket: us_listen_socket | null = null;
  private readonly inflight = new Set<Subscription>();

  constructor(private readonly hooks: EdgeHooks) {
    const uws = loadUws();
    this.app = uws.App();
    for (const [path, produce] of Object.entries(hooks.endpoints ?? {})) {
      this.app.get(path, (res) => {
        let aborted = false;
        res.onAborted(() => { aborted = true; });
        void Promise.resolve(produce()).then(({ contentType, body }) => {
          if (!aborted) res.cork(() => res.writeHeader('content-type', contentType).end(body));
        });
      });
    }
    this.app.any('/*', (res, req) => this.handle(res, req));
  }

  listen(host: string, port: number): Promise<number> {
    const uws = loadUws();
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (socket) => {
        if (socket === false) {
          reject(new Error(`rxgate could not listen on ${host}:${port} (port in use or not permitted)`));
          return;
        }
        this.listenSocket = socket;
        resolve(uws.us_socket_local_port(socket));
      });
    });
  }

  /** Stops accepting connections and cancels requests still under way. */
  close(): void {
    if (this.listenSocket !== null) {
      loadUws().us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
    for (const sub of this.inflight) sub.unsubscribe();
    this.inflight.clear();
    // Newer uWS builds can also close idle keep-alive sockets.
    (this.app as { close?: () => void }).close?.();
  }

  private handle(res: HttpResponse, uwsReq: HttpRequest): void {
    const writer = new ResponseWriter(res);
    const headers: Record<string, string> = {};
    uwsReq.forEach((name, value) => {
      const prev = headers[name];
      headers[name] = prev === undefined ? value : prev + (name === 'cookie' ? '; ' : ', ') + value;
    });
    const method = uwsReq.getCaseSensitiveMethod().toUpperCase();
    const path = uwsReq.getUrl();
    const query = uwsReq.getQuery() ?? '';
    const id = headers['x-request-id'] || randomUUID();
    const cl = headers['content-length'];
    const hasBody = (cl !== undefined && cl !== '0') || headers['transfer-encoding'] !== undefined;

    let normalized;
    let badPath: unknown = null;
    try {
      // Bytes that were not UTF-8 arrive as U+FFFD: they cannot be forwarded as received.
      if (path.includes('\uFFFD')) throw new BadRequestError('request path is not valid UTF-8');
      normalized = normalizePath(path);
    } catch (err) {
      badPath = err;
      normalized = { match: path, forward: path };
    }
    const req: GatewayRequest = {
      id, method, path: latin1Bytes(normalized.forward), query, normalizedPath: normalized.match, headers,
      remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString(),
      protocol: 'http',
      body: hasBody ? new UwsRequestBody(res, writer, cl === undefined ? null : Number(cl)) : null,
      params: {},
      receivedAt: performance.now(),
      locals: {},
      attempt: { number: 1, tried: NO_ORIGINS, instance: null },
    };

    let subscription: Subscription | null = null;
    let settled = false;
    res.onAborted(() => {
      writer.closed = true;
      if (settled) return;
      settled = true;
      if (subscription !== null) {
        subscription.unsubscribe();
        this.inflight.delete(subscription);
      }
      req.body?.destroy();
      this.hooks.onClientAbort?.(req);
    });

    if (badPath !== null) {
      settled = true;
      this.writeError(writer, req, toGatewayError(badPath));
      return;
    }

    let headSent = false;
    const sub = this.hooks.dispatch(req).subscribe({
      next: (response) => {
        if (writer.closed) return;
        headSent = true;
        this.hooks.onAnswer?.(req, response.status, null);
        const extra = [
          'x-gateway-response-time', (performance.now() - req.receivedAt).toFixed(1) + 'ms',
        ];
        if (!hasHeader(response.headers, 'x-request-id')) extra.push('x-request-id', req.id);
        writer.writeHead(response, extra, method === 'HEAD');
      },
      error: (err: unknown) => {
        settled = true;
        if (subscription !== null) this.inflight.delete(subscription);
        req.body?.destroy();
        const error = toGatewayError(err);
        if (writer.closed && !headSent) return;
        if (headSent) {
          // Never let a truncated body look complete: drop the connection.
          this.hooks.onBroken?.(req, error);
          this.hooks.logger.warn({ reqId: req.id, code: error.code, err: error.cause ?? error }, 'upstream failed mid-response; connection closed');
          writer.abort();
          return;
        }
        this.writeError(writer, req, error);
      },
      complete: () => {
        settled = true;
        if (subscription !== null) this.inflight.delete(subscription);
        if (!headSent && !writer.closed) {
          this.writeError(writer, req, toGatewayError(new Error('pipeline completed without a response')));
        }
      },
    });
    if (!settled) {
      subscription = sub;
      this.inflight.add(sub);
    }
  }

  private writeError(writer: ResponseWriter, req: GatewayRequest, error: GatewayError): void {
    this.hooks.onAnswer?.(req, error.status, error);
    if (error.status >= 500 && error.code === 'INTERNAL_ERROR') {
      this.hooks.logger.error({ reqId: req.id, err: error.cause ?? error }, 'internal error');
    }
    const headers = [...JSON_HEADERS, 'x-request-id', req.id,
      'x-gateway-response-time', (performance.now() - req.receivedAt).toFixed(1) + 'ms'];
    if (error.headers !== undefined) {
      for (const [k, v] of Object.entries(error.headers)) headers.push(k, v);
    }
    writer.writeSimple(error.status, headers, errorResponseBody(error));
  }
}

/**
 * uWS hands the request line over decoded as UTF-8, and undici writes the
 * path as latin1: re-encode so the bytes sent upstream are the ones received.
 */
function latin1Bytes(path: string): string {
  return NON_ASCII.test(path) ? Buffer.from(path, 'utf8').toString('latin1') : path;
}

function hasHeader(headers: readonly string[], name: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return true;
  return false;
}

