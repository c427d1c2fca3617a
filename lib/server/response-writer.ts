import type { HttpResponse } from 'uWebSockets.js';
import { errorResponseBody, InternalError, type GatewayError } from '../errors.ts';
import type { Body, BodySink, GatewayRequest, GatewayResponse } from '../types.ts';
import { bodyless, elapsed, writeHead } from './response-head.ts';
import { writeErrorAnswer } from './error-answer.ts';

export { elapsed } from './response-head.ts';

// What a corked `flush` sends after the head (when the head is still unsent).
const HEAD = 0; // nothing more
const WRITE = 1; // a chunk of a body of unknown length (chunked)
const TRY_END = 2; // a chunk of a body of known length
const END = 3; // the end of the body
const NO_BODY = 4; // the end of a response without a body
const ERROR = 5; // an error answer
type Op = typeof HEAD | typeof WRITE | typeof TRY_END | typeof END | typeof NO_BODY | typeof ERROR;

/** The writer whose `flush` runs in `cork`: one shared callback rather than a closure per write. */
let corking: ResponseWriter | null = null;
/** Heads waiting for their first body chunk: written alone at the end of the tick if none came (one microtask for all). */
const waitingHeads: ResponseWriter[] = [];
/** The microtask that flushes them is a job of this promise: Node's `queueMicrotask` makes an `AsyncResource` and a bound function
 * each time and runs the callback in its async scope (~90 against ~35 ns, ~200 bytes against ~80); most ticks queue one. */
const RESOLVED = Promise.resolve();

/**
 * The "head + body" answer of an `Exchange` (connection.ts), which is the one object per request on the uWS side; this
 * is its response half, in its own file. It owns the uWS `HttpResponse` and whether uWS still owns it (`closed`), and
 * writes the response: head, then the body with backpressure — `tryEnd` when the length is known (uWS sets
 * Content-Length), chunked `write` otherwise — resuming the source from `onWritable`, which is registered only once a
 * write is refused. All writes are corked.
 */
export abstract class ResponseWriter implements BodySink {
  /** uWS no longer owns `res` (the client went away, or the response ended): never touch it again. */
  protected closed = false;
  /** The error answer closes the connection (a head rxgate refused). */
  protected closeAfterError = false;
  /** The answer says `Connection: close` and ends the connection (the edge is draining: in-flight.ts; the client asked to: edge.ts). uWS 20.30's end(…, true) writes the header unless the request's Connection value has 5 bytes (its test for `close`). */
  closeAtEnd = false;
  /** A head not yet written: it goes out with the first body chunk, in one send. */
  private head: GatewayResponse | null = null;
  private body: Body | null = null;
  /** The body's length, -1 when unknown (sent chunked). */
  private total = -1;
  private responseTime = ''; private failure: GatewayError | null = null; private writable = false;
  /** The error answer's JSON body (`errorResponseBody`), serialised once by the caller. */ private failureBody = '';
  /** A chunk `tryEnd` did not take in full, and the write offset it started at. */
  private pending: Uint8Array | null = null; private pendingOffset = 0;
  // In and out of a corked `flush`.
  private op: Op = HEAD;
  private chunk: Uint8Array | null = null;
  private sent = false; private sentAll = false; private sentFrom = 0;
  /** Answers to HEAD get the head alone, whatever the pipeline's response carries. */
  private readonly isHead: boolean;
  constructor(protected readonly res: HttpResponse, readonly req: GatewayRequest) {
    this.isHead = req.method === 'HEAD';
  }

  /**
   * Starts the response. Without a body it is written and ended at once. With one, the head waits for the first chunk
   * (undici usually delivers both in the same tick) so head and body leave in one corked send; at the end of the tick it
   * is written alone if the body is slow to start. `now`: `performance.now()` as the answer was decided (the response time).
   */
  protected writeResponse(response: GatewayResponse, now: number): void {
    this.responseTime = elapsed(this.req, now);
    this.head = response;
    const body = response.body;
    if (body === null || this.isHead) {
      body?.destroy();
      this.cork(NO_BODY, null);
      this.closed = true; // once written: a head that throws leaves it open, and the edge watches aborts
      return;
    }
    this.body = body;
    if (body.length !== null) this.total = body.length;
    body.pipe(this);
    if (this.head !== null && waitingHeads.push(this) === 1) void RESOLVED.then(ResponseWriter.flushWaitingHeads);
  }

  /** Writes a complete error answer with `body` (its `errorResponseBody`); `now`: `performance.now()` as it was decided. */
  protected writeError(error: GatewayError, body: string, now: number): void {
    this.responseTime = elapsed(this.req, now);
    this.failure = error;
    this.failureBody = body;
    this.cork(ERROR, null);
    this.closed = true;
  }

  /** The upstream failed after the head was sent: close the connection. */
  protected drop(): void {
    if (this.closed) return;
    this.closed = true;
    this.res.close();
  }

  write(chunk: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.total < 0) {
      this.cork(WRITE, chunk);
      if (this.sent) return true;
      this.awaitWritable();
      return false;
    }
    this.cork(TRY_END, chunk);
    if (this.sentAll) {
      this.closed = true;
      return true;
    }
    if (this.sent) return true;
    this.pending = chunk;
    this.pendingOffset = this.sentFrom;
    this.awaitWritable();
    return false;
  }

  end(): void {
    if (this.closed) return;
    // The body ended short of its Content-Length: never pass it off as complete.
    if (this.total > 0) this.res.close();
    else this.cork(END, null); // may write the head: closed once it did (see writeResponse)
    this.closed = true;
  }

  /** The client went away: the body is destroyed, so what it holds for the client is let go (the cache tee's read-ahead). */
  protected abandonBody(): void {
    const body = this.body; this.body = null; body?.destroy();
  }

  /** `onWritable` costs a closure: registered only once a write is refused. */
  private awaitWritable(): void {
    if (this.writable) return;
    this.writable = true;
    this.res.onWritable((offset) => this.onWritable(offset));
  }

  private onWritable(offset: number): boolean {
    if (this.closed) return true;
    const pending = this.pending;
    if (pending !== null) {
      const [ok, done] = this.res.tryEnd(pending.subarray(offset - this.pendingOffset), this.total);
      if (done) {
        this.closed = true;
        this.body?.resume(); // the last bytes are out: the body reaches its end (a no-op write once closed; RL, M1)
        return true;
      }
      if (!ok) return false;
      this.pending = null;
    }
    this.body?.resume();
    return true;
  }

  private cork(op: Op, chunk: Uint8Array | null): void {
    this.op = op;
    this.chunk = chunk;
    corking = this;
    this.res.cork(ResponseWriter.flushCorking);
    corking = null;
    this.chunk = null;
  }

  private static flushCorking(this: void): void {
    corking!.flush();
  }

  /** Runs in `cork`: the head if still unsent, then what `op` says. */
  private flush(): void {
    const res = this.res;
    const head = this.head;
    let contentLength: string | undefined;
    const closeHere = this.closeAtEnd && head !== null && this.endsHere(head);
    if (head !== null) {
      this.head = null;
      const length = writeHead(res, head, this.responseTime, this.req.id);
      if (length === null) this.refuseHead(head); // op is ERROR: the 500 below
      else contentLength = length;
      if (length !== null && this.closeAtEnd && (!closeHere || this.req.headers['connection']?.length === 5)) res.writeHeader('connection', 'close');
    }
    switch (this.op) {
      case WRITE:
        this.sent = res.write(this.chunk!);
        break;
      case TRY_END: {
        if (closeHere) {
          res.end(this.chunk!, true);
          this.sent = this.sentAll = true;
          break;
        }
        // With the head in this cork no body byte has gone yet: uWS's write offset (body bytes) is 0.
        this.sentFrom = head !== null ? 0 : res.getWriteOffset();
        const [ok, done] = res.tryEnd(this.chunk!, this.total);
        this.sent = ok;
        this.sentAll = done;
        break;
      }
      case END:
        res.end(undefined, closeHere);
        break;
      case NO_BODY: {
        if (bodyless(head!.status)) res.endWithoutBody();
        else if (this.isHead) {
          const n = contentLength !== undefined ? Number(contentLength) : head!.body?.length ?? undefined;
          // endWithoutBody(n) waits for n body bytes in this uWS build: write the header ourselves.
          if (n !== undefined && Number.isFinite(n)) res.writeHeader('content-length', String(n));
          res.endWithoutBody();
        } else res.end(undefined, closeHere);
        break;
      }
      case ERROR:
        writeErrorAnswer(res, this.req, this.failure!, this.failureBody, this.responseTime, this.isHead, this.closeAfterError, this.closeAtEnd);
        break;
    }
  }

  /** A head `writeHead` refused, nothing written (RR2 #4): a 500 in its place, then the connection closed; in the cork. */
  private refuseHead(head: GatewayResponse): void {
    const error = new InternalError('the response head has a header or status that cannot be written as given');
    this.failure = error;
    this.failureBody = errorResponseBody(error);
    this.closeAfterError = true;
    this.closed = this.sent = this.sentAll = true; // what write/end/writeResponse read after the cork: over
    (this.body ?? head.body)?.destroy();
    this.op = ERROR;
    this.headRefused(error);
  }

  /** Told of a head refused and answered 500 (`refuseHead`): the exchange's status and log. */
  protected headRefused(_error: GatewayError): void {}

  /** Whether `flush` ends the response in the head's cork: draining, uWS's `end(…, true)` writes `Connection: close` and closes. */
  private endsHere(head: GatewayResponse): boolean {
    const op = this.op;
    return op === END || (op === TRY_END && this.chunk!.length === this.total) || (op === NO_BODY && !this.isHead && !bodyless(head.status));
  }

  private static flushWaitingHeads(this: void): void {
    try {
      for (let i = 0; i < waitingHeads.length; i++) {
        const writer = waitingHeads[i]!;
        if (writer.head !== null && !writer.closed) writer.cork(HEAD, null);
      }
    } catch (err) {
      // Uncaught, as from `queueMicrotask`: not a rejection of the job's promise.
      queueMicrotask(() => { throw err; });
    } finally {
      waitingHeads.length = 0;
    }
  }
}
