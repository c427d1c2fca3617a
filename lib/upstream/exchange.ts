import type { Observer } from 'rxjs';
import { errors } from 'undici';
import { BadGatewayError, ClientAbortedError, toGatewayError } from '../errors.ts';
import type { Body, BodySink, GatewayResponse } from '../types.ts';
import { BodyGap } from './body-gap.ts';
import { ExchangeDeadline } from './exchange-deadline.ts';
import type { Service } from './service.ts';
import type { Upstream } from './upstream.ts';
import { copyResponseHeaders, isEventStream, UNKNOWN_TRANSFER_CODING } from './response-head.ts';
import { aboutInstance, strikesInstance } from './strikes.ts';

export { requestBody } from './request-body.ts';

/**
 * One upstream exchange: undici's dispatch handler on one side (the legacy
 * handler API, which skips undici's per-request header re-parsing wrapper),
 * and the response `Body` on the other. It tells `service` how the instance
 * did: a response head is a success, a connection failure or a timeout
 * before it a strike towards ejection.
 * The service's timeout on the head and the body's gaps: `ExchangeDeadline`.
 */
export class Exchange extends ExchangeDeadline implements Body {
  length: number | null = null;
  /** Body bytes undici handed over so far. */
  private received = 0;
  private sink: BodySink | null = null;
  private queue: Buffer[] | null = null;
  private upstreamResume: (() => void) | null = null;
  /** undici handed the request to a connected socket: from here on it may have been sent. */
  private connected = false;
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
  /** An event stream's gap limit (the route's `streamIdleTimeout`, not the service's timeout). */
  private gap: BodyGap | null = null;

  constructor(
    private readonly subscriber: Observer<GatewayResponse>,
    private readonly head: boolean,
    private readonly service: Service,
    private readonly upstream: Upstream,
    /**
     * Gap limit for a `text/event-stream` body, ms; 0: none (other bodies get
     * the service's timeout). -1: the client does not take event streams,
     * so every body gets the service's timeout.
     */
    private readonly streamIdleMs = 0,
  ) {
    super(service.deadlines);
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
    this.untime();
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
    // Cancelled while it waited for a connection (the client left while queued): thrown, undici fails the request
    // unwritten and keeps the socket (client-h1's writeH1); its abort would destroy a connection that did nothing wrong.
    if (this.cancelled) throw new ClientAbortedError('request cancelled');
    else {
      this.abort = abort;
      this.timed?.add(this);
    }
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.cancelled) return true;
    // llhttp takes any three digits; a status outside 100-599 is no HTTP
    // answer (nginx: "upstream sent invalid status"), and undici would pass
    // 600-999 on as a final one and 000-099 as interim. The connection goes
    // (undici's abort destroys it), the client gets the usual 502.
    if (status < 100 || status > 599) {
      this.abort?.(new BadGatewayError('upstream sent an invalid status', { sent: true }));
      return true;
    }
    if (status < 200) {
      this.wait(); // an interim response (100 Continue): undici's head wait started again too
      return true;
    }
    const headers: string[] = [];
    const length = copyResponseHeaders(raw, headers);
    if (length === UNKNOWN_TRANSFER_CODING) {
      this.abort?.(new BadGatewayError('upstream sent unknown Transfer-Encoding', { sent: true }));
      return true;
    }
    this.headed = true;
    if (this.service.strikeStatus[status] === 1) this.service.failed(this.upstream);
    else this.upstream.outlier.success();
    this.service.answered(this.upstream, this.sentAt, true);
    if (this.service.statusObserver !== null) this.service.statusObserver(this.upstream, status);
    this.upstreamResume = resume;
    if (length !== null) this.length = length;
    const hasBody = !this.head && status !== 204 && status !== 304;
    this.bodyless = !hasBody;
    if (hasBody && this.streamIdleMs >= 0 && isEventStream(headers)) {
      this.untime();
      if (this.streamIdleMs > 0) this.gap = new BodyGap(this.service.runtime, this.streamIdleMs, () => this.abort?.(new errors.BodyTimeoutError()));
    }
    const response: GatewayResponse = { status, statusText, headers, body: hasBody ? this : null };
    this.subscriber.next(response);
    // The first gap started with the head if the body was piped at once
    // (`resume` restarted the wait); if nobody takes it yet, undici pauses,
    // and so does the gap.
    if (this.sink === null || !hasBody) this.timed?.remove(this);
    return this.sink !== null || !hasBody;
  }

  onData(chunk: Buffer): boolean {
    if (this.cancelled) return true;
    this.gap?.touch();
    this.received += chunk.length;
    const sink = this.sink;
    if (sink === null || this.queue !== null) {
      (this.queue ??= []).push(chunk);
      this.hold();
      return false;
    }
    if (sink.write(chunk)) {
      // The last chunk of a sized body: undici completes it in the same
      // parse, so no gap is left to time (one clock read fewer).
      if (this.length === null || !(this.received >= this.length)) this.wait();
      return true;
    }
    this.hold();
    return false;
  }

  /** The client stopped taking the body: its gap does not count until it resumes. */
  private hold(): void {
    if (this.gap !== null) this.gap.hold(true);
    else this.timed?.remove(this);
  }

  onComplete(): void {
    this.settled = true;
    this.untime();
    this.gap?.stop();
    this.ended = true;
    this.release();
    if (this.cancelled) return;
    this.flush();
  }

  onError(err: Error): void {
    this.settled = true;
    this.untime();
    this.gap?.stop();
    this.release();
    if (this.cancelled) return;
    this.sink = null;
    this.queue = null;
    const error = toGatewayError(err, this.connected);
    const code = (err as { code?: string }).code ?? '';
    if (!this.headed && aboutInstance(code, error.sent)) {
      if (strikesInstance(error, code, this.upstream.outlier)) this.service.failed(this.upstream);
      this.service.answered(this.upstream, this.sentAt, false);
    }
    this.subscriber.error(error);
  }

  // ---- Body ----

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.resume();
  }

  resume(): void {
    if (this.flush() && !this.ended) {
      if (this.gap !== null) this.gap.hold(false);
      else this.wait();
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
