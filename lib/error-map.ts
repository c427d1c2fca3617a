import { BadGatewayError, BadRequestError, GatewayTimeoutError, InternalError, isGatewayError, type GatewayError } from './errors.ts';

// How an error thrown below the edge (undici's, RxJS's, Node's) becomes one rxgate error; `errors.ts` re-exports it.

const CONNECT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'HPE_INVALID_CONSTANT', 'UND_ERR_INFO',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

// Errors that can only happen before a connection exists: the request was never sent.
const UNSENT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Maps anything thrown below the edge to one rxgate error: undici's
 * connection errors to 502, its timeouts and RxJS's `TimeoutError` to 504,
 * anything unknown to 500 (its message is not shown to the client).
 * Connect-time failures (refused, DNS, connect timeout) come out `sent:
 * false`; pass `sent: false` when the caller knows more (`forward` does:
 * undici never handed the request to a socket).
 */
export function toGatewayError(err: unknown, sent = true): GatewayError {
  if (isGatewayError(err)) return err;
  const e = err as { code?: string; name?: string; message?: string } | null;
  const code = e?.code;
  const options = { cause: err, sent: sent && (code === undefined || !UNSENT_CODES.has(code)) };
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new GatewayTimeoutError(code === 'UND_ERR_CONNECT_TIMEOUT' ? 'upstream connect timed out' : 'upstream timed out', options);
  }
  if (e?.name === 'TimeoutError') return new GatewayTimeoutError('upstream timed out', options);
  if (e?.name === 'HTTPParserError') return new BadGatewayError('upstream sent an invalid HTTP response', options);
  // undici's parser asserts on responses it cannot frame, e.g. a 101 to a request that asked for no upgrade.
  if (code === 'ERR_ASSERTION' && /[\\/]undici[\\/]/.test(String((err as Error).stack))) return new BadGatewayError('upstream sent an invalid HTTP response', options);
  if (e?.name === 'SocketError') return new BadGatewayError('upstream connection failed', options);
  // undici refused the request (e.g. DEL in a header value, which uWS hands over): it never left. Not a
  // retryable 502, which the breaker counts: a few of them from anyone opened it for every client.
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') {
    return new BadRequestError('the request cannot be forwarded as sent', { cause: err, sent: false });
  }
  if (code !== undefined && (CONNECT_CODES.has(code) || code.startsWith('UND_ERR') || code.startsWith('HPE_'))) {
    return new BadGatewayError(code === 'ECONNREFUSED' ? 'upstream refused the connection' : 'upstream connection failed', options);
  }
  // OpenSSL verification codes (DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED,
  // UNABLE_TO_VERIFY_LEAF_SIGNATURE…) and Node's TLS errors.
  if (code !== undefined && (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || /CERT|SELF_SIGNED|^UNABLE_TO_/.test(code))) {
    return new BadGatewayError('upstream TLS handshake failed', options);
  }
  return new InternalError('internal gateway error', options);
}

/**
 * What a log line keeps of a 502's cause: its name, code and message. Not the
 * whole error: undici's HTTPParserError carries `data`, the rest of the
 * upstream's read (up to 64 KiB of its response), and the stack says nothing
 * an operator can act on (review RC).
 */
export function causeForLog(cause: unknown): unknown {
  if (!(cause instanceof Error)) return cause;
  const { code } = cause as { code?: unknown };
  // No prototype: pino's err serializer then takes the type from `name`, not from Object.
  return Object.assign(Object.create(null) as object, { name: cause.name, message: cause.message, ...(code !== undefined ? { code } : {}) });
}
