import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { Observable, throwError, type Observer } from 'rxjs';
import type { Dispatcher } from 'undici';
import { NoHealthyUpstreamError, NoOtherInstance } from '../errors.ts';
import { isAscii, latin1Bytes } from '../headers.ts';
import type { GatewayEvents } from '../observe/events.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../types.ts';
import { Exchange, requestBody } from './exchange.ts';
import type { Service } from './service.ts';
import { upstreamHeaders } from './upstream-headers.ts';
import { Upstream } from './upstream.ts';
import type { Startable } from '../subscriber.ts';

/**
 * A handler that can also run without building its Observable: what
 * `forward` returns. `start(req, observer)` does what subscribing `observer`
 * to `handler(req)` does, with the same calls to `observer` in the same
 * order, and returns what stops it (null when it is already over). The
 * route table uses it for a route whose pipeline is `forward` alone, so
 * such a request costs no Observable, no Subscriber and no closures.
 */
export type StartableHandler = Handler & Startable;

export interface ForwardOptions {
  /**
   * `Host` sent upstream: `false` uses the upstream's own host (nginx's and
   * Kong's default), `true` keeps the client's, a string sets it.
   * @default false
   */
  preserveHost?: boolean | string;
  /**
   * Longest gap between two chunks of a `text/event-stream` body, ms; 0: none
   * (other bodies: the service's timeout).
   * @default 0
   */
  streamIdleTimeoutMs?: number;
  /** Where a request with no usable instance is reported (`noHealthyUpstream`). */
  events?: GatewayEvents | null;
}

/**
 * The terminal stage: sends the request to one instance of `service` with
 * undici's low-level `dispatch()` and emits the response head as soon as it
 * arrives, its body streaming with backpressure. The Observable completes
 * when the body has been handed on in full; unsubscribing earlier aborts the
 * upstream request (undici destroys that socket, so nothing half-read is
 * reused).
 *
 * It picks an instance not in `req.attempt.tried` when it can, and records
 * the one it picked in `req.attempt.instance`. An error before the request
 * reached a socket (connection refused, DNS, connect timeout) comes out with
 * `sent: false`, the request body unread.
 */
export function forward(service: Service, options: ForwardOptions = {}): StartableHandler {
  const preserveHost = options.preserveHost ?? false;
  const streamIdleMs = options.streamIdleTimeoutMs ?? 0;

  /** Sends `req` to `upstream` with `observer` as its observer; the upstream exchange is what cancels it. */
  const sendTo = (req: GatewayRequest, upstream: Upstream, observer: Observer<GatewayResponse>): Exchange => {
    req.attempt.instance = upstream.origin;
    const l = req.locals;
    // An observed request (access log): what its line reads. `attempts` is set only then.
    if (l.attempts !== undefined) {
      l.attempts++;
      l.service = service.name;
      l.instance = upstream.origin;
      l.upstreamAt = performance.now();
    }
    // Only a client that accepts an event stream (EventSource always says
    // so) may get one, so only its exchange may apply the route's gap limit.
    const streaming = acceptsEventStream(req.headers.accept);
    // Before the exchange, which counts the request in flight: a header it refuses (400, not UTF-8) throws here, and
    // the count it took was never given back (review RR3: 1,152 such requests held the instance at 503 for good).
    const headers = upstreamHeaders(req, upstream, preserveHost, true);
    const exchange = new Exchange(observer, req.method === 'HEAD', service, upstream, streaming ? streamIdleMs : -1);
    const body = requestBody(req.body);
    if (body instanceof Readable) exchange.upload = body;
    upstream.pool.dispatch({
      path: upstream.basePath + req.path + querySuffix(req),
      method: req.method,
      headers,
      // undici takes a request's TLS name from its Host header unless one is
      // given (core/request.js), and its client destroys the connection when
      // that name changes (client.js, "servername changed"): with preserveHost,
      // clients alternating Host forced a new upstream handshake per request.
      // The connector ignores this name (upstream-tls.ts): it only has to be
      // the same for every request to the instance. undefined for http.
      servername: upstream.servername,
      body,
      // The service's timeout bounds the head and each gap in the body; the
      // exchange keeps it on the service's one deadline list, because
      // undici's own timeouts make a timer object per request
      // (docs/upstream-timers.md). Total and per-attempt limits are the
      // timeout operator's.
      headersTimeout: 0,
      bodyTimeout: 0,
    } as Dispatcher.DispatchOptions, exchange); // servername: undici reads it, its types do not list it
    return exchange;
  };

  // The exchange is the teardown (its `unsubscribe` cancels): no closure per request.
  const send = (req: GatewayRequest, upstream: Upstream): Observable<GatewayResponse> =>
    new Observable<GatewayResponse>((subscriber) => sendTo(req, upstream, subscriber));

  const events = options.events ?? null;
  const unavailable = (): Observable<never> => {
    events?.emit('noHealthyUpstream', { service: service.name });
    return throwError(() => new NoHealthyUpstreamError(`no healthy upstream for service ${service.name}`, { sent: false }));
  };

  // A function of its own: a closure over `choose`'s `upstream` would allocate a context per request.
  const overloaded = (upstream: Upstream): Observable<never> => throwError(() => upstream.overloaded());
  /** Another instance the balancer would pick with room in its queue, passing over the full ones (review RR3); null when none has. */
  const withRoom = (full: Upstream, tried: readonly string[], req: GatewayRequest): Upstream | null => {
    const avoid = [...tried, full.origin];
    for (let i = 0; i < service.upstreams.length; i++) {
      const u = service.pick(avoid, req);
      if (u === undefined || avoid.includes(u.origin)) return null;
      if (u.inFlight < u.maxInFlight) return u;
      avoid.push(u.origin);
    }
    return null;
  };

  // Instances that keep failing are out of rotation (the service's outlier
  // ejection, which `circuitBreaker.perInstance` configures): pick skips them.
  /** The instance for `req`, or what answers it instead: none usable, or a traced attempt (its own Observable). */
  const choose = (req: GatewayRequest): Upstream | Observable<GatewayResponse> => {
    const attempt = req.attempt;
    let upstream = service.pick(attempt.tried, req);
    if (upstream === undefined) return unavailable();
    // Its queue behind `connections` is full (`maxPending`): another instance with room, else refused at once, not queued.
    if (upstream.inFlight >= upstream.maxInFlight) {
      const other = withRoom(upstream, attempt.tried, req);
      if (other === null) return overloaded(upstream);
      upstream = other;
    }
    // After a head timeout, retry asks for another instance or none (see Attempt.elsewhereOr).
    const or = attempt.elsewhereOr;
    if (or !== undefined && attempt.tried.includes(upstream.origin)) return throwError(() => new NoOtherInstance(or));
    // Set only when a tracer provider is registered: the attempt gets its span.
    const tracing = req.locals.tracing;
    return tracing === undefined ? upstream : tracing.attempt(send, service.name, req, upstream);
  };

  const forwardRequest = function forwardRequest(req: GatewayRequest): Observable<GatewayResponse> {
    const chosen = choose(req);
    return chosen instanceof Upstream ? send(req, chosen) : chosen;
  } as StartableHandler;
  // What subscribing to `forwardRequest(req)` does, without the Observable.
  forwardRequest.start = function startForward(req, observer) {
    try {
      // A balancer of your own, or the tracer, may throw as well.
      const chosen = choose(req);
      if (!(chosen instanceof Upstream)) return chosen.subscribe(observer);
      return sendTo(req, chosen, observer);
    } catch (err) {
      // As an Observable's subscribe function throwing: the error goes to the observer.
      observer.error(err);
      return null;
    }
  };
  return forwardRequest;
}

/**
 * The query part of the target sent upstream: `?` and the query as received
 * (re-encoded as bytes for undici when outside ASCII), a bare `?` kept.
 */
function querySuffix(req: GatewayRequest): string {
  const query = req.query;
  if (query === '') return req.emptyQuery === true ? '?' : '';
  return '?' + (isAscii(query) ? query : latin1Bytes(query));
}

/** Whether an `Accept` header admits `text/event-stream` (what `EventSource` sends). */
function acceptsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('text/event-stream');
}
