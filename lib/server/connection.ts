import { performance } from 'node:perf_hooks';
import type { Observable, Observer, Unsubscribable } from 'rxjs';
import type { HttpResponse, us_socket_context_t } from 'uWebSockets.js';
import { BadRequestError, causeForLog, errorResponseBody, toGatewayError, type GatewayError } from '../errors.ts';
import type { Body, GatewayRequest, GatewayResponse } from '../types.ts';
import type { EdgeHooks } from './edge.ts';
import type { InFlight, InFlightEntry } from './in-flight.ts';
import { RequestBody, toldToClose } from './request-body.ts';
import { ResponseWriter } from './response-writer.ts';
import { completeUpgrade } from './websocket.ts';
import { upgradeOf } from './ws-connect.ts';

/**
 * One request/response exchange on the uWS side, from the uWS handler to the end of the response or the client going
 * away: the one object that owns the uWS `HttpResponse` for that time, so whether uWS still owns it (`closed`) is known
 * in one place. It starts reading the request body (`readBody`: `onData`, pause/resume in `RequestBody`), writes the
 * response to it (the `ResponseWriter` it extends: cork, `tryEnd`/`write`, `onWritable`), and on `onAborted`
 * unsubscribes from the pipeline, which aborts the upstream request. It is the pipeline's observer and the response
 * body's sink; the request body, when there is one, is a `RequestBody` on the same `HttpResponse`.
 */
export class Exchange extends ResponseWriter implements Observer<GatewayResponse>, InFlightEntry {
  private settled = false; // the pipeline is over: it completed, failed, or was unsubscribed
  private answered = false; // the pipeline's response was taken: from here a failure can only drop the connection
  private subscription: Unsubscribable | null = null;
  prevInFlight: InFlightEntry | null = null; nextInFlight: InFlightEntry | null = null; // the edge's list of running pipelines (in-flight.ts)
  private finalizers: (() => void)[] | null = null;
  // For `hooks.onFinish` (the access log): what was answered, bytes each way, once.
  private status = 0; private bytesOut = 0; private finished = false;
  private requestBody: RequestBody | null = null; // the request body, when the request has one
  /**
   * @param upgrade the uWS socket context when the request came through `app.ws` (an opening handshake), else null
   * @param watchAbort register `onAborted` now; false: the edge calls `watchAbortUnlessAnswered` before its handler returns
   */
  constructor(
    res: HttpResponse, req: GatewayRequest, private readonly hooks: EdgeHooks, private readonly inflight: InFlight,
    private readonly upgrade: us_socket_context_t | null = null, watchAbort = true,
  ) {
    super(res, req);
    if (watchAbort) this.watchAbort();
  }

  /**
   * Registers `onAborted` unless the response already ended (a pipeline that answered in the uWS handler: a cache hit, a
   * 404, a 401): uWS needs it only for a response that outlives it; one costs a closure and a native handle (85–145 ns).
   */
  watchAbortUnlessAnswered(): void {
    if (!this.closed) this.watchAbort();
  }

  private watchAbort(): void {
    this.res.onAborted(() => this.onAborted());
  }

  /**
   * Starts reading the request body: chunks that come before the pipeline pipes it are queued and the client paused, so
   * memory stays at one chunk whatever the body's size. Call in the uWS handler, before any stage runs, or lose chunks.
   */
  readBody(length: number | null): Body {
    const body = new RequestBody(this.res, this, length);
    this.res.onData((ab, isLast) => body.onData(ab, isLast));
    this.requestBody = body;
    return body;
  }

  /** uWS no longer owns the response (the client went away, or it ended): the request body must not pause or resume it. */
  get gone(): boolean { return this.closed; }

  /** Answers with what the pipeline emits: one head, then its body. */
  respond(response$: Observable<GatewayResponse>): void {
    this.running(response$.subscribe(this));
  }

  /** Answers with what the request's pipeline emits, started without its Observable where the route allows (`EdgeHooks.start`). */
  run(): void {
    const start = this.hooks.start;
    let subscription;
    try {
      subscription = start !== undefined ? start(this.req, this) : this.hooks.dispatch(this.req).subscribe(this);
    } catch (err) {
      // A handler that throws instead of returning an Observable (a stage of one's own, one returning a Promise): answered as an error it emitted. Uncaught, it ended the process from inside uWS.
      if (!this.settled) this.error(err);
      return;
    }
    this.running(subscription);
  }

  private running(subscription: Unsubscribable | null): void {
    if (!this.settled) {
      this.subscription = subscription;
      this.inflight.add(this);
    }
  }

  // `unsubscribe` and `add`: what the edge called on the pipeline's Subscription (with a `remove`, RxJS would take this for a Subscriber: do not add one).

  /** Stops the pipeline (the edge is closing), which aborts the upstream request. */
  unsubscribe(): void {
    this.subscription?.unsubscribe();
    this.leave();
  }

  /** Runs `finalizer` once the pipeline is over (at once if it is). The drain waits so: an error answer lingering goes out now. */
  add(finalizer: () => void): void {
    if (!this.inflight.has(this)) return finalizer();
    (this.finalizers ??= []).push(finalizer); if (this.inflight.draining) this.requestBody?.cut();
  }

  /** Off the edge's list of running pipelines; finalisers run. */
  private leave(): void {
    if (!this.inflight.delete(this)) return;
    const finalizers = this.finalizers;
    if (finalizers === null) return;
    this.finalizers = null;
    for (const f of finalizers) f();
  }

  /** Answers with an error without running the pipeline (a path that cannot be routed). */
  reject(error: GatewayError): void {
    this.settled = true;
    this.fail(error);
    this.finish(0);
  }

  /**
   * Answers `error` and closes the connection, so nothing after this request on it is parsed. Called on a later turn
   * than the uWS handler: inside it uWS has the socket corked, so `end(body, closeConnection)` could not close before
   * uWS parsed the rest of the read (a body smuggled as a request). Left pending, the request makes uWS close the
   * connection itself if another request follows in that read (then no answer is sent).
   */
  rejectAndClose(error: GatewayError): void {
    if (this.closed) return;
    this.closeAfterError = true;
    this.reject(error);
  }

  // ---- the pipeline's observer ----
  next(response: GatewayResponse): void {
    const link = upgradeOf(response);
    if (link !== null) {
      // An answer that is not "head + body": the upstream accepted a WebSocket.
      if (this.closed) link.abort();
      else if (this.upgrade === null) {
        link.abort();
        this.answered = true;
        this.fail(new BadRequestError('a WebSocket upgrade needs a valid Sec-WebSocket-Key and Sec-WebSocket-Version: 13'));
      } else {
        this.answered = true;
        this.closed = true;
        this.status = 101;
        this.hooks.onAnswer?.(this.req, 101, null, performance.now());
        completeUpgrade(this.res, this.req, this.upgrade, link);
      }
      return;
    }
    if (this.closed) return;
    this.answered = true;
    this.status = response.status;
    // One clock read for the metrics and the response-time header.
    const now = performance.now();
    this.hooks.onAnswer?.(this.req, response.status, null, now);
    if (this.inflight.draining) this.closeAtEnd = true;
    try {
      this.writeResponse(response, now);
    } catch (err) { // what else the write throws (refused heads answer 500: headRefused) ended the process through RxJS
      response.body?.destroy();
      this.hooks.logger.error({ reqId: this.req.id, err }, 'internal error writing a response; connection closed');
      this.drop();
    }
  }

  /** A head the writer refused, answered 500 in its place (response-writer.ts `refuseHead`, review RR2 #4): logged. */
  protected override headRefused(error: GatewayError): void {
    this.hooks.onHeadRefused?.(this.req, this.status, error); this.status = 500; // counted under the stage's status: now the 500 sent
    this.hooks.logger.error({ reqId: this.req.id, err: error }, 'internal error: a response head with a header or status that is not a string or holds CR, LF or NUL');
  }

  error(err: unknown): void {
    this.settle();
    this.req.body?.destroy();
    const error = toGatewayError(err);
    if (this.answered) {
      // Never let a truncated body look complete: drop the connection.
      this.hooks.onBroken?.(this.req, error);
      this.hooks.logger.warn({ reqId: this.req.id, code: error.code, err: error.cause ?? error }, 'upstream failed mid-response; connection closed');
      this.drop();
      this.finish(2);
      return;
    }
    if (!this.closed) this.fail(error);
    this.finish(0);
  }

  complete(): void {
    this.settle();
    if (!this.answered && !this.closed) this.fail(toGatewayError(new Error('pipeline completed without a response')));
    this.finish(0);
  }

  /** The response body's bytes pass here on their way to the writer: counted for `onFinish`. */
  override write(chunk: Uint8Array): boolean {
    this.bytesOut += chunk.byteLength;
    return super.write(chunk);
  }

  private finish(kind: 0 | 1 | 2): void {
    if (this.finished) return;
    this.finished = true;
    this.hooks.onFinish?.(this.req, this.status, this.requestBody?.bytesIn ?? 0, this.bytesOut, kind);
  }

  private settle(): void {
    this.settled = true;
    this.leave();
  }

  private onAborted(): void {
    this.closed = true;
    if (this.settled) return this.leave(); // an error answer that was lingering (fail)
    this.settled = true;
    const subscription = this.subscription;
    if (subscription !== null) {
      subscription.unsubscribe();
      this.leave();
    }
    this.abandonBody();
    this.req.body?.destroy();
    this.hooks.onClientAbort?.(this.req);
    this.finish(1);
  }

  private fail(error: GatewayError): void {
    this.status = error.status;
    if (this.inflight.draining) this.closeAtEnd = true;
    // Serialised once: the answer's body, and its length for the access log.
    const body = errorResponseBody(error);
    // A HEAD gets the head alone (unless the connection closes after it: response-writer.ts).
    if (this.hooks.onFinish !== undefined) this.bytesOut = this.req.method === 'HEAD' && !this.closeAfterError ? 0 : Buffer.byteLength(body);
    const now = performance.now();
    this.hooks.onAnswer?.(this.req, error.status, error, now);
    if (error.status >= 500 && error.code === 'INTERNAL_ERROR') this.hooks.logger.error({ reqId: this.req.id, err: error.cause ?? error }, 'internal error');
    // Why a 502 (the answer says "upstream TLS handshake failed", the cause CERT_HAS_EXPIRED): nginx's error log, Envoy's %UPSTREAM_TRANSPORT_FAILURE_REASON%.
    else if (error.status === 502 && error.cause !== undefined) this.hooks.logger.warn({ reqId: this.req.id, err: causeForLog(error.cause) }, error.message);
    // The body still coming: written once its rest came (kept alive) or cut short (closed): RequestBody.linger. In flight meanwhile: a drain writes it at once (`add`; review RD).
    if (this.closeAfterError || this.requestBody?.linger((complete) => {
      if (!this.closed) this.writeError(complete || this.closeAtEnd ? error : toldToClose(error), body, now); // cut short: uWS closes the paused client later
      this.leave();
    }) !== true) return this.writeError(error, body, now);
    this.inflight.add(this); if (this.inflight.draining) this.requestBody!.cut();
  }
}
