import { performance } from 'node:perf_hooks';
import type { HttpRequest, HttpResponse, TemplatedApp, us_listen_socket, us_socket_context_t } from 'uWebSockets.js';
import { BadRequestError, toGatewayError, type GatewayError } from '../errors.ts';
import { isAscii, latin1Bytes } from '../headers.ts';
import { normalizePath } from '../router/normalize.ts';
import { NO_PARAMS } from '../router/router.ts';
import { asksClose, readHead } from './head-rules.ts';
import { admit } from './limits.ts';
import type { GatewayRequest } from '../types.ts';
import { Exchange } from './connection.ts';
import type { EdgeHooks, EdgeListenOptions } from './edge-hooks.ts';
import { serveEndpoints } from './endpoints.ts';
import { InFlight } from './in-flight.ts';
import { peerAddressOf } from './remote-address.ts';
import { acceptableRequestId, requestIds } from './request-id.ts';
import { listenRedirect, type RedirectListener } from './redirect-http.ts';
import { closeApp, EdgeTls, type CertificateExpiry } from './tls.ts';
import { loadUws, uwsBuild } from './uws.ts';
import { goingAway, websocketBehavior } from './websocket.ts';
import { ListenError } from './listen-error.ts';

/** Attempt 1 has tried nothing yet (shared: it is never written to). */
const NO_ORIGINS: readonly string[] = [];

export type { EdgeHooks, EdgeListenOptions };

/**
 * The uWebSockets.js edge: turns each uWS request into a `GatewayRequest`
 * and hands it, with its uWS response, to an `Exchange` (connection.ts),
 * which subscribes to its pipeline, writes what it emits, and unsubscribes
 * when the client goes away (`onAborted`), which aborts the upstream
 * request. The one place where errors become responses.
 */
export class Edge {
  private app: TemplatedApp;
  /** Apps a certificate swap replaced: their open connections finish there; `close` closes them. */
  private readonly retired: TemplatedApp[] = [];
  /** Where the listener listens (a certificate swap listens there again). */
  private bound: { host: string; port: number } | null = null;
  /** `GatewayRequest.protocol`, from the listener itself (X-Forwarded-Proto upstream). */
  readonly protocol: 'http' | 'https';
  private listenSocket: us_listen_socket | null = null;
  private readonly inflight = new InFlight();
  /** Requests whose dispatch waits for a later turn (handle: `closing`). */
  private deferred = 0;
  private readonly nextRequestId: () => string;
  private readonly tls: EdgeTls | null;
  private redirect: RedirectListener | null = null;
  /** uWS 20.30 never hands over a head with a control byte in a value (it holds the connection, then closes it at its idle timeout) (head-rules.ts). */
  private readonly controlsRefused: boolean;

  constructor(private readonly hooks: EdgeHooks, private readonly listenOptions: EdgeListenOptions = {}) {
    if (listenOptions.redirectHttp !== undefined && listenOptions.tls === undefined) throw new TypeError('listen.redirectHttp needs listen.tls');
    this.tls = listenOptions.tls === undefined ? null : new EdgeTls(listenOptions.tls);
    this.protocol = this.tls === null ? 'http' : 'https';
    this.app = this.createApp();
    this.controlsRefused = uwsBuild().build === 'trufflesuite';
    this.nextRequestId = requestIds(hooks.requestId);
  }

  /** A uWS app (`SSLApp` with TLS) with the edge's routes on each of its routers (one per SNI name). */
  private createApp(): TemplatedApp {
    const uws = loadUws();
    if (this.tls !== null) return this.tls.app(uws, (app) => this.routes(app));
    const app = uws.App();
    this.routes(app);
    return app;
  }

  private routes(app: TemplatedApp): void {
    serveEndpoints(app, this.hooks.endpoints);
    // Upgrades take the same path (routing, the route's pipeline) and may end as a WebSocket.
    app.ws('/*', websocketBehavior((res, req, context) => this.handle(res, req, context), this, this.hooks.limits?.maxWebSocketMessage));
    app.any('/*', (res, req) => this.handle(res, req));
  }

  listen(host: string, port: number): Promise<number> {
    const uws = loadUws();
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (socket) => {
        if (socket === false) {
          reject(new ListenError(`rxgate could not listen on ${host}:${port} (port in use or not permitted)`));
          return;
        }
        this.listenSocket = socket;
        const bound = uws.us_socket_local_port(socket);
        this.bound = { host, port: bound };
        const redirect = this.listenOptions.redirectHttp;
        if (redirect === undefined) resolve(bound);
        else listenRedirect(uws, host, redirect, bound).then((r) => { this.redirect = r; resolve(bound); }, reject);
      });
    });
  }

  /** The plain-HTTP redirect listener's port (`listen.redirectHttp`); null when there is none. */
  get redirectPort(): number | null {
    return this.redirect?.port ?? null;
  }

  /**
   * Reads the certificate files again, throwing a TypeError that names the
   * file when one is unreadable or invalid. When some changed, a new app
   * with them listens on the same port and the old listener closes (see
   * `EdgeTls`): returns true then. When the port cannot be shared (it was
   * 0, or the system refuses), the listener keeps its certificates and
   * `tlsPending` names the entries that changed.
   */
  reloadTls(): boolean {
    const tls = this.tls;
    if (tls === null) return false;
    tls.reread();
    if (tls.pending.length === 0 || this.listenSocket === null || this.bound === null) return false;
    const next = this.createApp();
    const socket = tls.takeOver(loadUws(), next, this.listenSocket, this.bound);
    if (socket === null) return false;
    this.retired.push(this.app);
    this.app = next;
    this.listenSocket = socket;
    return true;
  }

  /** Certificate entries whose files changed since the listener started: they serve after a restart. */
  get tlsPending(): readonly string[] {
    return this.tls?.pending ?? [];
  }
  /** The expiries of the certificates the listener serves (none without TLS). */ get tlsExpiries(): CertificateExpiry[] { return this.tls?.expiries ?? []; }

  /** Stops accepting connections; open ones (and requests on them) carry on. */
  stopListening(): void {
    this.inflight.draining = true;
    if (this.listenSocket !== null) {
      loadUws().us_listen_socket_close(this.listenSocket);
      this.listenSocket = null;
    }
    this.redirect?.close();
    this.redirect = null;
  }

  /** Resolves once every exchange in flight now has ended (later ones are not waited for). */
  settled(): Promise<void> {
    const pending = [...this.inflight];
    if (pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      let left = pending.length;
      // A finaliser on a subscription already closed runs at once.
      for (const sub of pending) sub.add(() => { if (--left === 0) resolve(); });
    });
  }

  /** Resolves once no exchange is in flight, those that start meanwhile on open connections (or wait for their turn: `deferred`) included. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0 || this.deferred > 0) {
      if (this.inflight.size > 0) await this.settled();
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Stops accepting connections, cancels requests still under way and closes every connection. */
  close(): void {
    this.stopListening();
    for (const sub of this.inflight) sub.unsubscribe();
    this.inflight.clear();
    goingAway(this); // WebSockets get 1001 Going Away first (websocket.ts)
    // Closes every socket, idle keep-alive ones too (both builds have it: 20.30 on Node 20, 20.69 on Node 22+).
    closeApp(this.app);
    for (const app of this.retired.splice(0)) closeApp(app);
  }

  private handle(res: HttpResponse, uwsReq: HttpRequest, upgrade: us_socket_context_t | null = null): void {
    const headers: Record<string, string> = {};
    const headProblem = readHead(uwsReq, headers, this.controlsRefused);
    const raw = uwsReq.getCaseSensitiveMethod();
    // Most requests are GETs: the literal, without the new string toUpperCase makes.
    const method = raw === 'GET' ? 'GET' : raw.toUpperCase();
    const path = uwsReq.getUrl();
    // Kept as characters (what `match.query` and the access log read); forward
    // re-encodes one outside ASCII as bytes for undici, as the path is here.
    const rawQuery = uwsReq.getQuery(); // undefined without a `?`, '' for a bare one
    const query = rawQuery ?? '';
    const given = headers['x-request-id'];
    const id = given !== undefined && acceptableRequestId(given) ? given : this.nextRequestId();
    const cl = headers['content-length'];
    const hasBody = (cl !== undefined && cl !== '0') || headers['transfer-encoding'] !== undefined;
    // RFC 9112 §9.6: no request after one that asks to close (or one the draining edge answers) is processed on its connection.
    const conn = headers['connection'];
    const closing = upgrade === null && (this.inflight.draining || (conn !== undefined && asksClose(conn)));

    let normalized;
    let badPath: unknown = null;
    // One scan: only a path with a character outside ASCII can hold U+FFFD or need re-encoding.
    const ascii = isAscii(path);
    try {
      // Bytes that were not UTF-8 arrive as U+FFFD: they cannot be forwarded as received.
      if (!ascii && path.includes('\uFFFD')) throw new BadRequestError('request path is not valid UTF-8');
      if (query !== '' && query.includes('\uFFFD')) throw new BadRequestError('request query is not valid UTF-8');
      // A fragment after the query is refused as one in the path is (normalize.ts): match.query would see what the upstream may cut.
      if (query !== '' && query.includes('#')) throw new BadRequestError('a fragment (#) in the request target');
      normalized = normalizePath(path);
    } catch (err) {
      badPath = err;
      normalized = { match: path, forward: path };
    }
    const req: GatewayRequest = {
      id, method, path: ascii ? normalized.forward : latin1Bytes(normalized.forward), query, emptyQuery: rawQuery === '', normalizedPath: normalized.match,
      encodedSlash: normalized.encodedSlash === true, headers,
      remoteAddress: peerAddressOf(res),
      protocol: this.protocol,
      body: null,
      params: NO_PARAMS,
      receivedAt: performance.now(),
      locals: {},
      attempt: { number: 1, tried: NO_ORIGINS, instance: null },
    };
    // A request with a body reads it after the handler, an upgrade answers later: both watch for the client going away at once.
    const watchNow = hasBody || upgrade !== null || headProblem !== null || closing;
    const exchange = new Exchange(res, req, this.hooks, this.inflight, upgrade, watchNow);
    if (headProblem !== null) {
      // Answer and close on the next turn (see rejectAndClose): what follows this head is never parsed.
      const error = new BadRequestError(`malformed request head: ${headProblem}`);
      setImmediate(() => exchange.rejectAndClose(error));
      return;
    }
    if (hasBody) req.body = exchange.readBody(cl === undefined ? null : Number(cl));
    if (closing) {
      // Answered on a later turn, as a refused head is: a request pipelined behind this one in the same read finds it
      // pending, and uWS closes the connection without handing it over. Head limits judged now (they read the last head read).
      exchange.closeAtEnd = true;
      const refused = badPath === null ? this.hooks.limits?.refusal(req) ?? null : null;
      this.deferred++;
      setImmediate(() => { this.deferred--; if (!exchange.gone) this.dispatch(exchange, req, badPath, refused); });
      return;
    }
    try {
      this.dispatch(exchange, req, badPath);
    } finally {
      if (!watchNow) exchange.watchAbortUnlessAnswered();
    }
  }

  private dispatch(exchange: Exchange, req: GatewayRequest, badPath: unknown, headRefusal?: GatewayError | null): void {
    if (badPath !== null) exchange.reject(toGatewayError(badPath));
    else {
      const admitted = admit(this.hooks, req, exchange, headRefusal);
      if (admitted === null) exchange.run();
      else exchange.respond(admitted);
    }
  }
}


