/**
 * The closed set of errors rxgate answers with. Each has a literal HTTP
 * `status`, a stable `code` (the JSON body's `error.code`), whether a retry
 * may help, and the underlying `cause`. Only the server edge turns one into a
 * response (see `errorResponseBody`); everything else throws or emits these.
 */

const kGatewayError = Symbol.for('rxgate.error');

export type ErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'IP_FORBIDDEN'
  | 'ROUTE_NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'PAYLOAD_TOO_LARGE'
  | 'PRECONDITION_FAILED'
  | 'RATE_LIMITED'
  | 'INTERNAL_ERROR'
  | 'BAD_GATEWAY'
  | 'SERVICE_UNAVAILABLE'
  | 'NO_HEALTHY_UPSTREAM'
  | 'CIRCUIT_OPEN'
  | 'GATEWAY_TIMEOUT'
  | 'CLIENT_ABORTED'
  | 'REQUEST_TIMEOUT'
  | 'URI_TOO_LONG'
  | 'HEADERS_TOO_LARGE'
  | 'TOO_MANY_IN_FLIGHT'
  | 'UPSTREAM_OVERLOADED';

/** A `GatewayError`'s code: rxgate's (`ErrorCode` stays closed) or a user's own subclass's, with no cast. */
export type GatewayErrorCode = ErrorCode | (string & {});

export interface GatewayErrorOptions {
  cause?: unknown;
  /** Extra response headers, e.g. `retry-after`, `www-authenticate`, `allow`. */
  headers?: Record<string, string>;
  /** False when the gateway knows the upstream never got the request. @default true */
  sent?: boolean;
}

// `retry-after` of the answers that are about load, not about the request (shared, never written to).
const RETRY_IN_1S: Readonly<Record<string, string>> = Object.freeze({ 'retry-after': '1' });
const RETRY_IN_5S: Readonly<Record<string, string>> = Object.freeze({ 'retry-after': '5' });

export abstract class GatewayError extends Error {
  abstract readonly status: number;
  abstract readonly code: GatewayErrorCode;
  /** Whether repeating the same request upstream may succeed. */
  readonly retryable: boolean = false;
  readonly headers: Record<string, string> | undefined;
  /**
   * Whether the request may have reached the upstream. False only when the
   * gateway knows no byte of it was sent (connection refused, DNS failure,
   * connect timeout, no instance to send to): repeating it is then safe
   * whatever its method, and its request body was not read.
   */
  readonly sent: boolean;
  readonly [kGatewayError] = true;

  constructor(message: string, options: GatewayErrorOptions = {}) {
    // These are answers, not bugs: an open circuit or a rate limit may make
    // thousands a second, and capturing a stack trace is most of an Error's
    // cost. The underlying `cause` keeps its own stack.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    Error.stackTraceLimit = limit;
    this.headers = options.headers;
    this.sent = options.sent ?? true;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/** True for any rxgate error, even one from a second copy of the package. */
export function isGatewayError(err: unknown): err is GatewayError {
  return typeof err === 'object' && err !== null && (err as Record<symbol, unknown>)[kGatewayError] === true;
}

/** True for an rxgate error the upstream never saw (`sent: false`): safe to repeat on another instance. */
export function isUnsentError(err: unknown): err is GatewayError {
  return isGatewayError(err) && !err.sent;
}

/**
 * What `forward` fails an attempt with when retry asked for another instance
 * after a head timeout (`Attempt.elsewhereOr`) and there is none: not an
 * rxgate error, so a circuit breaker between them counts it as nothing (the
 * timeout was counted once); retry answers with `error`, the timeout itself.
 */
export class NoOtherInstance {
  constructor(readonly error: unknown) {}
}

export class BadRequestError extends GatewayError {
  readonly status = 400;
  readonly code = 'BAD_REQUEST';
}

export class UnauthorizedError extends GatewayError {
  readonly status = 401;
  readonly code = 'UNAUTHORIZED';
}

export class ForbiddenError extends GatewayError {
  readonly status = 403;
  readonly code = 'FORBIDDEN';
}

/** The client's address is denied, or not allowed, by an `ipFilter`. */
export class IpForbiddenError extends GatewayError {
  readonly status = 403;
  readonly code = 'IP_FORBIDDEN';
}

export class RouteNotFoundError extends GatewayError {
  readonly status = 404;
  readonly code = 'ROUTE_NOT_FOUND';
}

export class MethodNotAllowedError extends GatewayError {
  readonly status = 405;
  readonly code = 'METHOD_NOT_ALLOWED';
}

export class PayloadTooLargeError extends GatewayError {
  readonly status = 413;
  readonly code = 'PAYLOAD_TOO_LARGE';
}

/** An If-Match or If-Unmodified-Since failed against the cache's stored response (RFC 9110 §13.2). */
export class PreconditionFailedError extends GatewayError {
  readonly status = 412;
  readonly code = 'PRECONDITION_FAILED';
}

export class RateLimitedError extends GatewayError {
  readonly status = 429;
  readonly code = 'RATE_LIMITED';
}

export class InternalError extends GatewayError {
  readonly status = 500;
  readonly code = 'INTERNAL_ERROR';
}

/** The upstream could not be reached or broke the exchange. */
export class BadGatewayError extends GatewayError {
  readonly status = 502;
  readonly code = 'BAD_GATEWAY';
  override readonly retryable = true;
}

/** No upstream instance is usable (all unhealthy, none configured). */
export class ServiceUnavailableError extends GatewayError {
  readonly status = 503;
  readonly code = 'SERVICE_UNAVAILABLE';
  override readonly retryable = true;
}

/** The gateway's own capacity is used up (a WebSocket route at its `maxConnections`): 503 as `ServiceUnavailableError`, but not retryable — another attempt meets the same count, and a circuit breaker must not take the gateway's refusal for the upstream's failure. */
export class AtCapacityError extends GatewayError {
  readonly status = 503;
  readonly code = 'SERVICE_UNAVAILABLE';
}

/**
 * An upstream's answer the gateway cannot pass on (a WebSocket refusal whose
 * body is over 1 MiB or cut short): 502 as `BadGatewayError`, but not
 * retryable — the upstream answered, and would answer the same again — so a
 * circuit breaker does not count it either.
 */
export class UnrelayableAnswerError extends GatewayError {
  readonly status = 502;
  readonly code = 'BAD_GATEWAY';
}

/** Every instance of the service is ejected or unhealthy, and the service has `panic: false`. */
export class NoHealthyUpstreamError extends GatewayError {
  readonly status = 503;
  readonly code = 'NO_HEALTHY_UPSTREAM';

  constructor(message: string, options: GatewayErrorOptions = {}) { // probes and ejections decide within seconds
    super(message, { headers: RETRY_IN_5S, ...options });
  }
}

/** An instance's queue behind `connections` is full (`maxPending`): the clients' load, not its failure; not retried, no breaker or strike counts it. */
export class UpstreamOverloadedError extends GatewayError {
  readonly status = 503; readonly code = 'UPSTREAM_OVERLOADED';
}

export class CircuitOpenError extends GatewayError {
  readonly status = 503;
  readonly code = 'CIRCUIT_OPEN';
}

export class GatewayTimeoutError extends GatewayError {
  readonly status = 504;
  readonly code = 'GATEWAY_TIMEOUT';
  override readonly retryable = true;
}

/** The client stopped sending its request body (`limits.bodyIdleTimeout`); the connection is closed. */
export class RequestTimeoutError extends GatewayError {
  readonly status = 408;
  readonly code = 'REQUEST_TIMEOUT';
}

/** The request target is longer than `limits.maxUrlLength`. */
export class UriTooLongError extends GatewayError {
  readonly status = 414;
  readonly code = 'URI_TOO_LONG';
}

/** The request head is over `limits.maxHeaderBytes` or has more than `limits.maxHeaders` fields. */
export class HeadersTooLargeError extends GatewayError {
  readonly status = 431;
  readonly code = 'HEADERS_TOO_LARGE';
}

/** The client already has `limits.maxRequestsPerClient` requests in flight. */
export class TooManyInFlightError extends GatewayError {
  readonly status = 429;
  readonly code = 'TOO_MANY_IN_FLIGHT';

  constructor(message: string, options: GatewayErrorOptions = {}) { // a slot comes back once one of the client's requests ends
    super(message, { headers: RETRY_IN_1S, ...options });
  }
}

/** The client went away. Never written to anyone; it only tears the pipeline down. */
export class ClientAbortedError extends GatewayError {
  readonly status = 499;
  readonly code = 'CLIENT_ABORTED';
}

export { causeForLog, toGatewayError } from './error-map.ts';

/** The JSON body every error response carries. */
export function errorResponseBody(err: GatewayError): string {
  return JSON.stringify({ error: { code: err.code, message: err.message } });
}
