import { Readable } from 'node:stream';
import { defer, Observable, throwError, type Subscriber } from 'rxjs';
import type { BreakerRegistry } from '../stages/circuit-breaker/registry.ts';
import type { CallOutcome } from '../stages/circuit-breaker/outcome.ts';
import { judged } from '../stages/circuit-breaker/circuit-breaker.ts';
import { BufferedBody } from '../body.ts';
import { CircuitOpenError, ClientAbortedError, ServiceUnavailableError, toGatewayError } from '../errors.ts';
import { connectionTokens, HOP_BY_HOP } from '../headers.ts';
import type { Body, BodySink, GatewayRequest, GatewayResponse, Handler } from '../types.ts';
import type { Service, Upstream } from './service.ts';

export interface ForwardOptions {
  /**
   * `Host` sent upstream: `false` uses the upstream's own host (nginx's and
   * Kong's default), `true` keeps the client's, a string sets it.
   * @default false
   */
  preserveHost?: boolean | string;
  /**
   * One circuit breaker per upstream instance (keyed by origin): an instance
   * whose breaker is open is skipped; when all are, `CircuitOpenError`.
   * @default null
   */
  breakers?: BreakerRegistry | null;
  /** What counts as a failure for those breakers. @default defaultIsFailure */
  isFailure?: (outcome: CallOutcome) => boolean;
}

/** Request headers the gateway sets itself; the client's copies are dropped. */
const REPLACED = new Set(['host', 'expect', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'x-request-id']);

/**
 * The terminal stage: sends the request to one instance of `service` with
 * undici's low-level `dispatch()` and emits the response head as soon as it
 * arrives, its body streaming with backpressure. The Observable completes
 * when the body has been handed on in full; unsubscribing earlier aborts the
 * upstream request (undici destroys that socket, so nothing half-read is
 * reused).
 *
 * Per attempt it sets `req.locals.upstream` (the origin used) and honours
 * `req.locals.avoid` (origins a retry wants to skip).
 */
export function forward(service: Service, options: ForwardOptions = {}): Handler {
  const preserveHost = options.preserveHost ?? false;
  const breakers = options.breakers ?? null;
  const isFailure = options.isFailure;

  const send = (req: GatewayRequest, upstream: Upstream): Observable<GatewayResponse> =>
    new Observable<GatewayResponse>((subscriber) => {
      req.locals.upstream = upstream.origin;
      const exchange = new Exchange(subscriber, req.method === 'HEAD');
      upstream.pool.dispatch({
        path: upstream.basePath + req.path + (req.query === '' ? '' : '?' + req.query),
        method: req.method,
        headers: upstreamHeaders(req, upstream, preserveHost),
        body: requestBody(req.body),
        // The service's timeout bounds the head and each gap in the body;
        // total and per-attempt limits are the timeout operator's.
        headersTimeout: service.timeoutMs,
        bodyTimeout: service.timeoutMs,
      }, exchange);
      return () => exchange.cancel();
    });

  if (breakers === null) {
    return function forwardRequest(req) {
      const upstream = service.pick(req.locals.avoid);
      if (upstream === undefined) return throwError(() => new ServiceUnavailableError(`no healthy upstream for service ${service.name}`));
      return send(req, upstream);
    };
  }
  // Per-instance breakers: skip instances whose breaker refuses.
  return function forwardRequestWithBreakers(req) {
    return defer(() => {
      const avoid = [...(req.locals.avoid ?? [])];
      let soonest: number | null = null;
      for (let i = 0; i < service.upstreams.length; i++) {
        const upstream = service.pick(avoid);
        if (upstream === undefined || (i > 0 && avoid.includes(upstream.origin))) break;
        const breaker = breakers.get(upstream.origin);
        const permit = breaker.tryAcquire();
        if (permit !== null) return judged(breaker, permit, send(req, upstream), isFailure);
        soonest = soonest === null ? breaker.retryAfter() : Math.min(soonest, breaker.retryAfter());
        avoid.push(upstream.origin);
      }
      if (soonest === null) return throwError(() => new ServiceUnavailableError(`no healthy upstream for service ${service.name}`));
      const retryAfter = String(Math.max(1, Math.ceil(soonest / 1000)));
      return throwError(() => new CircuitOpenError(`every instance of ${service.name} has an open circuit`, { headers: { 'retry-after': retryAfter } }));
    });
  };
}

function upstreamHeaders(req: GatewayRequest, upstream: Upstream, preserveHost: boolean | string): string[] {
  const headers = req.headers;
  const named = connectionTokens(headers.connection);
  const out: string[] = [];
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || REPLACED.has(name) || (named !== null && named.has(name))) continue;
    out.push(name, headers[name]!);
  }
  const clientHost = headers.host ?? '';
  const ip = req.remoteAddress;
  const xff = headers['x-forwarded-for'];
  out.push(
    'host', preserveHost === false ? upstream.host : preserveHost === true ? clientHost || upstream.host : preserveHost,
    'x-forwarded-for', xff === undefined ? ip : `${xff}, ${ip}`,
    'x-forwarded-proto', req.protocol,
    'x-forwarded-host', clientHost,
    'x-real-ip', ip,
    'x-request-id', req.id,
  );
  return out;
}

function requestBody(body: Body | null): Buffer | Readable | null {
  if (body === null) return null;
  // A replayable body (buffered by retry) goes as bytes: undici can resend it.
  if (body instanceof BufferedBody) return Buffer.concat(body.chunks as Uint8Array[]);
  const readable = new Readable({
    read() {
      body.resume();
    },
    destroy(err, cb) {
      body.destroy();
      cb(err);
    },
  });
  body.pipe({
    write: (chunk) => readable.push(chunk),
    end: () => void readable.push(null),
  });
  return readable;
}

/**
 * One upstream exchange: undici's dispatch handler on one side (the legacy
 * handler API, which skips undici's per-request header re-parsing wrapper),
 * and the response `Body` on the other.
 */
class Exchange implements Body {
  length: number | null = null;
  private sink: BodySink | null = null;
  private queue: Buffer[] | null = null;
  private upstreamResume: (() => void) | null = null;
  private abort: ((err: Error) => void) | null = null;
  /** undici is finished with this request (completed or failed). */
  private settled = false;
  /** The upstream body has ended, whether or not the sink has seen it yet. */
  private ended = false;
  private cancelled = false;
  private bodyless = true;

  constructor(private readonly subscriber: Subscriber<GatewayResponse>, private readonly head: boolean) {}

  cancel(): void {
    if (this.settled || this.cancelled) return;
    this.cancelled = true;
    this.sink = null;
    this.queue = null;
    this.abort?.(new ClientAbortedError('request cancelled'));
  }

  // ---- undici DispatchHandler ----

  onConnect(abort: (err: Error) => void): void {
    if (this.cancelled) abort(new ClientAbortedError('request cancelled'));
    else this.abort = abort;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200 || this.cancelled) return true;
    this.upstreamResume = resume;
    const headers: string[] = [];
    let named: Set<string> | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1').toLowerCase();
      const value = raw[i + 1]!.toString('latin1');
      if (name === 'connection') named = connectionTokens(value);
      else if (name === 'content-length') this.length = Number(value);
      if (HOP_BY_HOP.has(name)) continue;
      headers.push(name, value);
    }
    if (named !== null) {
      for (let i = headers.length - 2; i >= 0; i -= 2) {
        if (named.has(headers[i]!)) headers.splice(i, 2);
      }
    }
    const hasBody = !this.head && status !== 204 && status !== 304;
    this.bodyless = !hasBody;
    const response: GatewayResponse = { status, statusText, headers, body: hasBody ? this : null };
    this.subscriber.next(response);
    return this.sink !== null || !hasBody;
  }

  onData(chunk: Buffer): boolean {
    if (this.cancelled) return true;
    const sink = this.sink;
    if (sink === null || this.queue !== null) {
      (this.queue ??= []).push(chunk);
      return false;
    }
    return sink.write(chunk);
  }

  onComplete(): void {
    this.settled = true;
    this.ended = true;
    if (this.cancelled) return;
    this.flush();
  }

  onError(err: Error): void {
    this.settled = true;
    if (this.cancelled) return;
    this.sink = null;
    this.queue = null;
    this.subscriber.error(toGatewayError(err));
  }

  // ---- Body ----

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.resume();
  }

  resume(): void {
    if (this.flush() && !this.ended) this.upstreamResume?.();
  }

  destroy(): void {
    this.cancel();
  }

  /** Hands queued chunks on; false when the sink asked to pause again. */
  private flush(): boolean {
    const sink = this.sink;
    if (sink === null) {
      // A response without a body is over once undici says so.
      if (this.ended && this.bodyless) this.subscriber.complete();
      return false;
    }
    const queue = this.queue;
    if (queue !== null) {
      while (queue.length > 0) {
        if (!sink.write(queue.shift()!)) return false;
      }
      this.queue = null;
    }
    if (this.ended) {
      this.sink = null;
      sink.end();
      this.subscriber.complete();
    }
    return true;
  }
}
