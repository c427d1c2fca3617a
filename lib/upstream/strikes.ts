import type { GatewayError } from '../errors.ts';

/** undici errors before any connection that say nothing about the instance: a request it would not build, a pool closing. */
const NOT_THE_INSTANCE = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_DESTROYED', 'UND_ERR_CLOSED', 'UND_ERR_ABORTED']);
/** The instance closed or reset the connection before answering: a strike even after the request was sent (Envoy counts resets too). */
const CONNECTION_LOST = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * Whether a failure before the response head (undici's `code`) is about the
 * instance at all: not when undici refused to build the request (e.g. a DEL
 * byte in a header value, answered 400) or its pool was closing. Only one
 * that is counts as the instance's failed answer (latency, balancer).
 */
export function aboutInstance(code: string, sent: boolean): boolean {
  return sent || !NOT_THE_INSTANCE.has(code);
}

/**
 * Whether `error` (from undici's `code`), failing a request before its
 * response head, says the instance itself is in trouble (refused,
 * unreachable, or no head in time): a strike towards ejecting it.
 */
export function strikesInstance(error: GatewayError, code: string, outlier: { forgiveRace(): boolean }): boolean {
  if (error.code === 'GATEWAY_TIMEOUT') return true;
  if (error.code !== 'BAD_GATEWAY') return false;
  if (!error.sent) return aboutInstance(code, false);
  return CONNECTION_LOST.has(code) && !(reused(error.cause) && outlier.forgiveRace());
}

/**
 * Whether a lost connection had carried an answer before (undici's
 * `SocketError` carries the socket's counts: `bytesRead` > 0 on a reused
 * keep-alive connection, 0 on a fresh one). Its loss is then the idle-timeout
 * race (the instance closed it as the request arrived), not a strike, once
 * per answer the instance gives (`OutlierTracker.forgiveRace`): a GET is sent
 * again on a fresh connection, whose failure is one. Envoy needs 5 such
 * resets in a row; one ejected an instance here with `ejectAfter: 1`.
 */
function reused(cause: unknown): boolean {
  const socket = (cause as { socket?: { bytesRead?: unknown } } | null | undefined)?.socket;
  return typeof socket?.bytesRead === 'number' && socket.bytesRead > 0;
}
