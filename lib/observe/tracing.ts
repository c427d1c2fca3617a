import {
  createTraceState, ProxyTracerProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace,
  type Span, type Tracer, type TracerProvider,
} from '@opentelemetry/api';
import { Observable, type Subscriber } from 'rxjs';
import { toGatewayError } from '../errors.ts';
import type { GatewayRequest, GatewayResponse } from '../types.ts';
import type { Upstream } from '../upstream/upstream.ts';
import { ABORTED, BROKEN, type FinishKind } from './access-log.ts';
import { ensureTraceparent, formatTraceparent, parentIdOf, sampledOf, traceIdOf } from './trace-context.ts';

declare module '../types.ts' {
  interface RequestLocals {
    /** The request's server span, when a tracer provider is registered (set by Tracing.begin). */
    span?: Span;
    /** Set with `span`: forward asks it for each attempt's span. */
    tracing?: Tracing;
  }
}

/** Sends one attempt to one instance: what `forward` does, and what `Tracing.attempt` wraps. */
export type SendAttempt = (req: GatewayRequest, upstream: Upstream) => Observable<GatewayResponse>;

const TRACER_NAME = 'rxgate';
/** The API's no-op provider, which a ProxyTracerProvider delegates to until an SDK registers one. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * The tracer provider an SDK registered with `@opentelemetry/api`, or null
 * when none did (the API's no-op). Read once per config build: register the
 * SDK before building the gateway (`node --import ./otel.mjs …`).
 */
export function registeredTracerProvider(): TracerProvider | null {
  const global = trace.getTracerProvider() as TracerProvider & { getDelegate?: () => TracerProvider };
  const provider = typeof global.getDelegate === 'function' ? global.getDelegate() : global;
  if (provider === NOOP_PROVIDER || provider.constructor.name === 'NoopTracerProvider') return null;
  return provider;
}

/**
 * W3C trace context on every request, and OpenTelemetry spans when a tracer
 * provider is registered: a SERVER span per request (a child of the
 * client's `traceparent`), a CLIENT span per upstream attempt (a child of
 * that), whose context is the `traceparent` sent upstream. Without a
 * provider no span is made at all: the client's `traceparent` (and
 * `tracestate`) go upstream as they came, or a new one when it had none or
 * an invalid one.
 */
export class Tracing {
  /** Null: no provider registered, propagation only. */
  readonly tracer: Tracer | null;

  /** @param provider the provider to use; undefined: the one registered with the API, if any; null: none */
  constructor(provider?: TracerProvider | null) {
    const p = provider === undefined ? registeredTracerProvider() : provider;
    this.tracer = p === null ? null : p.getTracer(TRACER_NAME);
  }

  /** At dispatch, before routing: the request's trace context, and its server span. */
  begin(req: GatewayRequest): void {
    const headers = req.headers;
    const kept = ensureTraceparent(headers);
    const tracer = this.tracer;
    if (tracer === null) return;
    let parent = ROOT_CONTEXT;
    if (kept) {
      const tp = headers.traceparent!;
      const state = headers.tracestate;
      parent = trace.setSpanContext(ROOT_CONTEXT, {
        traceId: traceIdOf(tp), spanId: parentIdOf(tp), traceFlags: sampledOf(tp) ? 1 : 0, isRemote: true,
        ...(state !== undefined ? { traceState: createTraceState(state) } : {}),
      });
    }
    const span = tracer.startSpan(req.method, {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': req.method,
        'url.path': req.normalizedPath,
        'url.scheme': req.protocol,
        'client.address': req.clientAddress ?? req.remoteAddress,
        'rxgate.request_id': req.id,
      },
    }, parent);
    req.locals.span = span;
    req.locals.tracing = this;
    // What the access log shows and attempts without a span of their own send: this span's context.
    const sc = span.spanContext();
    headers.traceparent = formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & 1) === 1);
  }

  /** When the exchange has ended: the server span's last attributes, and its end. */
  end(req: GatewayRequest, status: number, kind: FinishKind): void {
    const l = req.locals;
    const span = l.span;
    if (span === undefined) return;
    if (l.route !== undefined) {
      span.updateName(`${req.method} ${l.route}`);
      span.setAttribute('http.route', l.route);
    }
    if (status !== 0) span.setAttribute('http.response.status_code', status);
    if (l.cache !== undefined) span.setAttribute('rxgate.cache', l.cache);
    if (l.breaker !== undefined) span.setAttribute('rxgate.breaker', l.breaker);
    if (l.attempts !== undefined) span.setAttribute('rxgate.attempts', l.attempts);
    if (kind === ABORTED) span.setAttribute('rxgate.end', 'aborted');
    else if (kind === BROKEN) span.setAttribute('rxgate.end', 'broken');
    if (status >= 500 || kind === BROKEN) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
  }

  /** `send(req, upstream)` under a CLIENT span, a child of the request's server span. */
  attempt(send: SendAttempt, serviceName: string, req: GatewayRequest, upstream: Upstream): Observable<GatewayResponse> {
    const tracer = this.tracer;
    if (tracer === null) return send(req, upstream);
    return new Observable<GatewayResponse>((subscriber) => {
      const parent = req.locals.span;
      const where = addressOf(upstream);
      const span = tracer.startSpan(req.method, {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': req.method,
          'server.address': where.address,
          'server.port': where.port,
          'url.full': upstream.origin + upstream.basePath + req.path,
          'rxgate.service': serviceName,
          'rxgate.attempt': req.attempt.number,
        },
      }, parent === undefined ? ROOT_CONTEXT : trace.setSpan(ROOT_CONTEXT, parent));
      const sc = span.spanContext();
      // upstreamHeaders copies the request's headers synchronously, inside `send`.
      req.headers.traceparent = formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & 1) === 1);
      const state = sc.traceState?.serialize();
      if (state !== undefined && state !== '') req.headers.tracestate = state;
      const watch = new AttemptWatch(subscriber, span);
      const subscription = send(req, upstream).subscribe(watch);
      return () => {
        subscription.unsubscribe();
        watch.cancelled();
      };
    });
  }
}

const addresses = new WeakMap<Upstream, { address: string; port: number }>();

/** An instance's host and port, as `server.address` and `server.port` want them. */
function addressOf(upstream: Upstream): { address: string; port: number } {
  let a = addresses.get(upstream);
  if (a === undefined) {
    const u = new URL(upstream.origin);
    a = { address: u.hostname.replace(/^\[(.*)\]$/, '$1'), port: u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 };
    addresses.set(upstream, a);
  }
  return a;
}

/** Passes an attempt on, ending its span at its end: completed, failed, or cancelled (a hedge's loser, a client gone). */
class AttemptWatch {
  private ended = false;

  constructor(private readonly downstream: Subscriber<GatewayResponse>, private readonly span: Span) {}

  next(res: GatewayResponse): void {
    this.span.setAttribute('http.response.status_code', res.status);
    // A CLIENT span's 4xx is an error too (OpenTelemetry's HTTP conventions).
    if (res.status >= 400) this.span.setStatus({ code: SpanStatusCode.ERROR });
    this.downstream.next(res);
  }

  error(err: unknown): void {
    if (!this.ended) {
      this.ended = true;
      const e = toGatewayError(err);
      this.span.setAttribute('error.type', e.code);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
      this.span.end();
    }
    this.downstream.error(err);
  }

  complete(): void {
    this.finish();
    this.downstream.complete();
  }

  cancelled(): void {
    if (this.ended) return;
    this.span.setAttribute('rxgate.cancelled', true);
    this.finish();
  }

  private finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.span.end();
  }
}
