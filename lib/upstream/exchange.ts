import { Readable } from 'node:stream';
import type { Observer } from 'rxjs';
import { errors, util } from 'undici';
import { BufferedBody } from '../body.ts';
import { ClientAbortedError, toGatewayError } from '../errors.ts';
import { connectionTokens, HOP_BY_HOP } from '../headers.ts';
import type { Body, BodySink, GatewayResponse } from '../types.ts';
import { BodyGap } from './body-gap.ts';
import type { Service } from './service.ts';
import type { Upstream } from './upstream.ts';

/** undici errors before any connection that say nothing about the instance: a request it would not build, a pool closing. */
const NOT_THE_INSTANCE = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_DESTROYED', 'UND_ERR_CLOSED', 'UND_ERR_ABORTED']);
/** The instance closed or reset the connection before answering: a strike even after the request was sent (Envoy counts resets too). */
const CONNECTION_LOST = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE']);

/**
 * The request body as undici takes it. A replayable body goes as bytes
 * (undici can resend them). A streamed one is read only once undici starts
 * writing it to a connected socket: if the connection fails first, the body
 * is untouched and another attempt may send it (see `GatewayError.sent`).
 */
export function requestBody(body: Body | null): Buffer | Readable | null {
  if (body === null) return null;
  if (body instanceof BufferedBody) return Buffer.concat(body.chunks as Uint8Array[]);
  let piped = false;
  const readable = new Readable({
    read() {
      if (piped) {
        body.resume();
        return;
      }
      piped = true;
      body.pipe({
        write: (chunk) => readable.push(chunk),
        end: () => void readable.push(null),
      });
    },
    destroy(err, cb) {
      // Never read: the body is still whole, and the edge destroys it when the request ends.
      if (piped) body.destroy();
      cb(err);
    },
  });
  return readable;
}

/**
 * One upstream exchange: undici's dispatch handler on one side (the legacy
 * handler API, which skips undici's per-request header re-parsing wrapper),
 * and the response `Body` on the other. It tells `service` how the instance
 * did: a response head is a success, a connection failure or a timeout
 * before it a strike towards ejection.
 */
export class Exchange implements Body {
  length: number | null = null;
  private sink: BodySink | null = null;
  private queue: Buffer[] | null = null;
  private upstreamResume: (() => void) | null = null;
  private abort: ((err: Error) => void) | null = null;
  /** undici handed the request to a connected socket: from here on it may have been sent. */
  private connected = false;
  /** The response head arrived. */
  private headed = false;
  /** undici is finished with this request (completed or failed). */
  private settled = false;
  /** The upstream body has ended, whether or not the sink has seen it yet. */
  private ended = false;
  private cancelled = false;
  private bodyless = true;
  /** The service was told this request is over (in-flight count). */
  private released = false;
  /** Clock time the request was handed to undici (`Service.started`). */
  private readonly sentAt: number;
  /** The body's gap limit (undici's own `bodyTimeout` is off, so an event stream may stay quiet). */
  private gap: BodyGap | null = null;

  constructor(
    private readonly subscriber: Observer<GatewayResponse>,
    private readonly head: boolean,
    private readonly service: Service,
    private readonly upstream: Upstream,
    /**
     * Gap limit for a `text/event-stream` body, ms; 0: none (other bodies get
     * the service's timeout). -1: undici's own `bodyTimeout` bounds the body
     * and the exchange keeps no timer.
     */
    private readonly streamIdleMs = 0,
  ) {
    this.sentAt = service.started(upstream);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.service.finished(this.upstream);
  }

  cancel(): void {
    if (this.settled || this.cancelled) return;
    this.cancelled = true;
    this.gap?.stop();
    // A hedge's loser, or a client that left: no head yet after this long is
    // a lower bound on the instance's latency, which it must not escape by
    // always being the one cancelled.
    if (!this.headed) this.service.abandoned(this.upstream, this.sentAt);
    this.release();
    this.sink = null;
    this.queue = null;
    this.abort?.(new ClientAbortedError('request cancelled'));
  }

  /** The teardown of the request's subscription (or the route's direct start): cancels it. */
  unsubscribe(): void {
    this.cancel();
  }

  // ---- undici DispatchHandler ----

  onConnect(abort: (err: Error) => void): void {
    // undici calls this as it starts writing the request to a connected socket.
    this.connected = true;
    if (this.cancelled) abort(new ClientAbortedError('request cancelled'));
    else this.abort = abort;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (status < 200 || this.cancelled) return true;
    this.headed = true;
    if (this.service.strikeStatus[status] === 1) this.service.failed(this.upstream);
    else this.upstream.outlier.success();
    this.service.answered(this.upstream, this.sentAt, true);
    this.upstreamResume = resume;
    const headers: string[] = [];
    let named: Set<string> | null = null;
    for (let i = 0; i < raw.length; i += 2) {
      // Well-known names come interned and lower-cased from undici's lookup tree (no string made per header).
      const name = util.headerNameToString(raw[i]!);
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
    if (hasBody && this.streamIdleMs >= 0) {
      const limit = isEventStream(headers) ? this.streamIdleMs : this.service.timeoutMs;
      if (limit > 0) this.gap = new BodyGap(this.service.runtime, limit, () => this.abort?.(new errors.BodyTimeoutError()));
    }
    const response: GatewayResponse = { status, statusText, headers, body: hasBody ? this : null };
    this.subscriber.next(response);
    return this.sink !== null || !hasBody;
  }

  onData(chunk: Buffer): boolean {
    if (this.cancelled) return true;
    this.gap?.touch();
    const sink = this.sink;
    if (sink === null || this.queue !== null) {
      (this.queue ??= []).push(chunk);
      this.gap?.hold(true);
      return false;
    }
    if (sink.write(chunk)) return true;
    this.gap?.hold(true);
    return false;
  }

  onComplete(): void {
    this.settled = true;
    this.gap?.stop();
    this.ended = true;
    this.release();
    if (this.cancelled) return;
    this.flush();
  }

  onError(err: Error): void {
    this.settled = true;
    this.gap?.stop();
    this.release();
    if (this.cancelled) return;
    this.sink = null;
    this.queue = null;
    const error = toGatewayError(err, this.connected);
    // Refused, unreachable, or no head in time: the instance itself is in trouble.
    const code = (err as { code?: string }).code ?? '';
    if (!this.headed && (error.code === 'GATEWAY_TIMEOUT' || (error.code === 'BAD_GATEWAY' && (error.sent ? CONNECTION_LOST.has(code) : !NOT_THE_INSTANCE.has(code))))) {
      this.service.failed(this.upstream);
    }
    if (!this.headed) this.service.answered(this.upstream, this.sentAt, false);
    this.subscriber.error(error);
  }

  // ---- Body ----

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.resume();
  }

  resume(): void {
    if (this.flush() && !this.ended) {
      this.gap?.hold(false);
      this.upstreamResume?.();
    }
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

/** Server-Sent Events: long-lived, quiet between events, so only the route's `streamIdleTimeout` bounds their gaps. */
function isEventStream(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'content-type') return headers[i + 1]!.toLowerCase().startsWith('text/event-stream');
  }
  return false;
}
