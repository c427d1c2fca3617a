import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { Observable, throwError, type Subscriber } from 'rxjs';
import type WebSocket from 'ws';
import { AtCapacityError, BadGatewayError, BadRequestError, GatewayError, GatewayTimeoutError, NoHealthyUpstreamError } from '../errors.ts';
import { connectionTokens, NON_ASCII } from '../headers.ts';
import type { GatewayEvents } from '../observe/events.ts';
import { after, type Runtime } from '../runtime.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../types.ts';
import type { Service } from '../upstream/service.ts';
import { upstreamHeaders } from '../upstream/upstream-headers.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { holdToGatewayCap, type WebSocketLimits } from './websocket-options.ts';
import { WsLink } from './ws-link.ts';
import { HANDSHAKE_ANSWER, refusalResponse, relayedHeaders } from './ws-refusal.ts';

/** `ws`, loaded on the first upgrade sent upstream: a gateway without WebSocket routes never loads it (1.4 MiB of V8 heap; docs/gc-promotion.md "Tenth round"). CommonJS: the class an `import` gives. */
let wsClass: typeof WebSocket | undefined;
const loadWs = (): typeof WebSocket => (wsClass ??= createRequire(import.meta.url)('ws') as typeof WebSocket);

/** The upstream link a `101` response carries to the edge (a symbol key survives `{ ...response }`). */
const UPGRADE = Symbol('rxgate.websocket');

type UpgradeResponse = GatewayResponse & { [UPGRADE]?: WsLink };

/** The link to hand the client's socket to, when `response` accepts an upgrade. */
export function upgradeOf(response: GatewayResponse): WsLink | null {
  return (response as UpgradeResponse)[UPGRADE] ?? null;
}

/** A WebSocket opening handshake (RFC 6455 4.1); anything else on a websocket route is plain HTTP. */
export function isUpgrade(req: GatewayRequest): boolean {
  // uWS's `ws` route takes only keys of 24 characters (16 bytes, base64): other requests arrive at `any`.
  return req.method === 'GET' && req.headers.upgrade?.toLowerCase() === 'websocket' && req.headers['sec-websocket-key']?.length === 24
    // RFC 6455 4.1: Connection names upgrade; without it a request is plain HTTP, as Envoy and the upstream's own server take it.
    && connectionTokens(req.headers.connection)?.has('upgrade') === true;
}

/** RFC 6455 4.4: the version spoken, on the answer to an upgrade of another (shared, never written to). */
const VERSION_13: Readonly<Record<string, string>> = Object.freeze({ 'sec-websocket-version': '13' });

/** A WebSocket that closes frees a place: `Retry-After: 1` on the 503 at `maxConnections` (shared, never written to). */
const RETRY_SOON: Readonly<Record<string, string>> = Object.freeze({ 'retry-after': '1' });

/** Handshake headers `ws` writes itself: the client's copies must not go too. */
const HANDSHAKE = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol']);

/** Open WebSockets by route identity, per gateway (its events object, kept across reloads): a rebuilt route counts those opened before it. */
const OPEN = new WeakMap<object, Map<string, { n: number }>>();

function openCount(gateway: object | null, key: string): { n: number } {
  if (gateway === null) return { n: 0 };
  let routes = OPEN.get(gateway);
  if (routes === undefined) OPEN.set(gateway, routes = new Map());
  let count = routes.get(key);
  if (count === undefined) routes.set(key, count = { n: 0 });
  return count;
}

export interface WebSocketForwardOptions {
  /** The route's name, for metrics. */
  route: string;
  /**
   * What keeps the route's count of open WebSockets across reloads: one a
   * rebuilt route with the same key takes on. Not the name, which routes that
   * differ by `match` or `methods` share (the default is the path).
   * @default route
   */
  countKey?: string;
  limits: WebSocketLimits;
  runtime: Runtime;
  preserveHost?: boolean | string;
  events?: GatewayEvents | null;
}

/**
 * The terminal stage of a `websocket: true` route. An opening handshake
 * (after the stages before it: auth, rate limit, breaker…) opens a
 * WebSocket to the instance the service's balancer picks, offering every
 * subprotocol the client offered, with the request's headers and
 * `X-Forwarded-*`/`X-Request-Id`; once the upstream accepted, it emits a
 * `101` carrying the link, which the edge completes with `res.upgrade`. A
 * refusal is `502`, no answer within `connectTimeout` `504`. Any other
 * request goes to `http` (the route's ordinary forward).
 */
export function websocketForward(service: Service, http: Handler, options: WebSocketForwardOptions): Handler {
  const { route, runtime } = options;
  let limits = options.limits;
  const preserveHost = options.preserveHost ?? false;
  const events = options.events ?? null;
  // Held to limits.maxWebSocketMessage of the gateway these events are (websocket-options.ts); without them, unchecked.
  if (events !== null) holdToGatewayCap(events, { route, limits, capTo: (capped) => { limits = capped; } });
  const open = openCount(events, options.countKey ?? route);

  const connect = (req: GatewayRequest, upstream: Upstream): Observable<GatewayResponse> =>
    new Observable<GatewayResponse>((subscriber) => {
      req.attempt.instance = upstream.origin;
      // The edge keeps a path's raw bytes outside ASCII as latin1 characters (for undici); ws parses a URL, which
      // percent-encodes characters as UTF-8: give it the characters sent, not their bytes (encoded twice). The query is characters.
      const path = NON_ASCII.test(req.path) ? Buffer.from(req.path, 'latin1').toString('utf8') : req.path;
      const url = upstream.origin.replace(/^http/, 'ws') + upstream.basePath + path + (req.query === '' ? '' : '?' + req.query);
      const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter((p) => p !== '');
      const list = upstreamHeaders(req, upstream, preserveHost);
      const headers: Record<string, string> = {};
      for (let i = 0; i < list.length; i += 2) if (!HANDSHAKE.has(list[i]!)) headers[list[i]!] = list[i + 1]!;
      // Offered here, not through ws's protocols: ws fails an answer without one, which the client may take (browsers do).
      if (offered.length > 0) headers['sec-websocket-protocol'] = offered.join(', ');
      const sentAt = service.started(upstream);
      let settled = false;
      let socket: WebSocket | null = null;
      /** A refusal whose body is still being read. */
      let refusal: { destroy(): void } | null = null;
      const settle = (ok: boolean): void => {
        settled = true;
        service.answered(upstream, sentAt, ok);
        service.finished(upstream);
      };
      const fail = (err: Error): void => {
        if (settled) return;
        settle(false);
        service.failed(upstream);
        subscriber.error(err instanceof GatewayError ? err : /timed out/i.test(err.message)
          ? new GatewayTimeoutError(`upstream ${upstream.origin} did not accept the WebSocket upgrade in time`, { cause: err })
          : new BadGatewayError(`WebSocket to upstream ${upstream.origin} failed: ${err.message}`, { cause: err, sent: false }));
      };
      const handshake = (tlsSocket: Socket | null): void => {
        let ws: WebSocket;
        try {
          ws = socket = new (loadWs())(url, [], {
            headers,
            handshakeTimeout: limits.connectTimeoutMs,
            maxPayload: limits.maxMessageSize,
            perMessageDeflate: false,
            // The upstream's pings go to the client, and its pongs come back from the client (ws-link.ts), as nginx and Envoy relay them.
            autoPong: false,
            followRedirects: false,
            // wss: the connection is already made, verified and pinned by the service's TLS (upstream-tls.ts).
            ...(tlsSocket !== null ? { createConnection: () => tlsSocket } : {}),
          });
        } catch (err) {
          // Node's http refuses a header value the client sent (a DEL…) before anything is sent: 400, as forward answers it.
          settled = true;
          service.finished(upstream);
          tlsSocket?.destroy();
          subscriber.error(new BadRequestError('the request cannot be forwarded as sent', { cause: err, sent: false }));
          return;
        }
        ws.on('error', fail);
        let accepted = { protocol: '', headers: [] as string[] };
        ws.once('upgrade', (res) => {
          const chosen = res.headers['sec-websocket-protocol'];
          // One the client did not offer stays for ws to refuse ("a subprotocol but none was requested"): a 502.
          if (chosen !== undefined && !offered.includes(chosen)) return;
          delete res.headers['sec-websocket-protocol'];
          accepted = { protocol: chosen ?? '', headers: relayedHeaders(res.rawHeaders, HANDSHAKE_ANSWER) };
        });
        ws.once('unexpected-response', (request, response) => {
          // The upstream answered: a strike for passive ejection (ejectOnStatuses) or a success, as exchange.ts counts plain HTTP.
          if (service.strikeStatus[response.statusCode ?? 0] === 1) service.failed(upstream);
          else upstream.outlier.success();
          settle(true);
          refusal = request;
          // Its own answer, passed on; the connection is not reused (it was asked to upgrade).
          refusalResponse(response).then((answer) => {
            request.destroy();
            subscriber.next(answer);
            subscriber.complete();
          }, (err: Error) => {
            request.destroy();
            subscriber.error(err);
          });
        });
        ws.once('open', () => {
          settle(true);
          // Nothing is read until the client's socket is open too.
          ws.pause();
          linked(ws, subscriber, accepted);
        });
      };
      if (!upstream.origin.startsWith('https:')) handshake(null);
      else {
        const target = new URL(upstream.origin);
        const timer = after(runtime, limits.connectTimeoutMs, () => fail(new Error(`TLS connection timed out after ${limits.connectTimeoutMs} ms`)));
        service.tlsConnector({ hostname: target.hostname, host: target.host, protocol: 'https:', port: target.port || '443', servername: null } as never, (err, tlsSocket) => {
          timer.unsubscribe();
          if (err !== null) fail(err);
          else if (settled) tlsSocket.destroy();
          else handshake(tlsSocket as Socket);
        });
      }
      return () => {
        refusal?.destroy();
        if (settled) return;
        settled = true;
        service.finished(upstream);
        socket?.terminate();
      };
    });

  /** The upstream accepted: a `101` carrying the link, for the edge to complete. */
  const linked = (socket: WebSocket, subscriber: Subscriber<GatewayResponse>, accepted: WsLink['accepted']): void => {
    open.n++;
    events?.emit('websocket', { route, phase: 'open' });
    const link = new WsLink(socket, limits, runtime, (summary) => {
      open.n--;
      events?.emit('websocket', { route, phase: 'close', ...summary });
    }, accepted);
    const response: UpgradeResponse = { status: 101, headers: [], body: null, [UPGRADE]: link };
    subscriber.next(response);
    subscriber.complete();
  };

  return function forwardWebSocket(req) {
    if (!isUpgrade(req)) return http(req);
    const version = req.headers['sec-websocket-version'];
    // ws would send 13 upstream in its place, and the client that speaks another got a 101 for a version it did not ask for.
    if (version !== '13') {
      return throwError(() => new BadRequestError(`Sec-WebSocket-Version ${version ?? '(none)'} is not supported: 13 is`, { sent: false, headers: VERSION_13 }));
    }
    if (open.n >= limits.maxConnections) {
      return throwError(() => new AtCapacityError(`route ${route} has its ${limits.maxConnections} WebSocket connections open`, { sent: false, headers: RETRY_SOON }));
    }
    const upstream = service.pick(req.attempt.tried, req);
    if (upstream === undefined) {
      events?.emit('noHealthyUpstream', { service: service.name });
      return throwError(() => new NoHealthyUpstreamError(`no healthy upstream for service ${service.name}`, { sent: false }));
    }
    return connect(req, upstream);
  };
}
