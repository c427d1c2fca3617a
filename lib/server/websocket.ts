import type { HttpRequest, HttpResponse, us_socket_context_t, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import type { GatewayRequest } from '../types.ts';
import { UWS_MAX_PAYLOAD } from './websocket-options.ts';
import type { ClientData, WsLink } from './ws-link.ts';

/**
 * The uWS side of every WebSocket route: one `app.ws('/*')` behavior whose
 * `upgrade` runs the request through the ordinary edge path (routing and the
 * route's pipeline), so a route without `websocket` answers an upgrade as
 * plain HTTP, and a refused one (401, 429, 503…) never upgrades. Per-route
 * limits live on each link: uWS's own are only outer bounds here (its
 * `idleTimeout` and backpressure limits are the gateway's to enforce).
 * uWS hands `ws` only requests with a valid `Sec-WebSocket-Key`; the rest of
 * the same paths still reach `any('/*')`.
 */
export function websocketBehavior(
  handle: (res: HttpResponse, req: HttpRequest, context: us_socket_context_t) => void,
  owner: object = {},
  maxPayloadLength = UWS_MAX_PAYLOAD, // limits.maxWebSocketMessage: what uWS reassembles before a route's maxMessageSize applies
): WebSocketBehavior<ClientData> {
  let sockets = OPEN.get(owner);
  if (sockets === undefined) OPEN.set(owner, sockets = new Set());
  const open = sockets;
  return {
    maxPayloadLength,
    idleTimeout: 0,
    maxBackpressure: 1024 * 1024 * 1024, // 1 GiB: never reached, links close slow consumers first
    closeOnBackpressureLimit: 0,
    sendPingsAutomatically: false,
    upgrade: handle,
    open: (ws) => {
      open.add(ws);
      ws.getUserData().link.opened(ws);
    },
    message: (ws, message, isBinary) => ws.getUserData().link.fromClient(message, isBinary),
    drain: (ws) => ws.getUserData().link.clientDrained(),
    ping: (ws) => ws.getUserData().link.touch(),
    pong: (ws, message) => ws.getUserData().link.clientPong(message),
    close: (ws, code, message) => {
      open.delete(ws);
      ws.getUserData().link.clientClosed(code, message);
    },
  };
}

/** Client sockets open, by the owner (an edge) whose behaviors accepted them: one set for all of an edge's apps. */
const OPEN = new WeakMap<object, Set<WebSocket<ClientData>>>();

/**
 * Closes every WebSocket `owner`'s behaviors opened, both sides with 1001
 * Going Away (RFC 6455 §7.4.1: "a server going down"), before the edge
 * closes its sockets: closed under them, the client saw 1006 (no close
 * frame) and the upstream "1001 client went away".
 */
export function goingAway(owner: object): void {
  for (const ws of [...OPEN.get(owner) ?? []]) ws.getUserData().link.goingAway();
}

/**
 * Completes the client's upgrade once the upstream accepted: after an async
 * wait, so corked, and only while uWS still owns `res` (the caller checks
 * `onAborted`), with the subprotocol and the headers (`Set-Cookie`…) of the
 * upstream's `101`.
 */
export function completeUpgrade(res: HttpResponse, req: GatewayRequest, context: us_socket_context_t, link: WsLink): void {
  res.cork(() => {
    const headers = link.accepted.headers;
    if (headers.length > 0) {
      // uWS writes its own status on the first writeHeader unless this one comes first (its typings say so).
      res.writeStatus('101 Switching Protocols');
      // Node reads header bytes as latin1 characters, and uWS writes a string as UTF-8: the bytes, as sent.
      for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i]!, Buffer.from(headers[i + 1]!, 'latin1'));
    }
    res.upgrade<ClientData>({ link }, req.headers['sec-websocket-key'] ?? '', link.protocol, '', context);
  });
}
