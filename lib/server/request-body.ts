import type { HttpResponse } from 'uWebSockets.js';
import type { GatewayError } from '../errors.ts';
import type { Body, BodySink } from '../types.ts';
import type { IdleWatched } from './limits-cores.ts';

/** An error answered while the body is still coming waits for at most this much more of it, read and dropped (`linger`). */
export const LINGER_BYTES = 1024 * 1024; // 1 MiB, Envoy's per_connection_buffer_limit_bytes
/** … and at most this long; then it is answered with `Connection: close`. */
export const LINGER_MS = 1000; // 1s, Envoy's delayed_close_timeout

/**
 * The client's request body, read from uWS `onData` with backpressure and
 * handed to the pipeline's sink: chunks that come before the pipeline pipes
 * it are queued and the client paused, so memory stays at one chunk whatever
 * the body's size. Made only for a request that has a body (see
 * `Exchange.readBody`). It also knows when the pipeline is reading and
 * whether the client keeps sending (`limits.bodyIdleTimeout`, see limits.ts).
 */
export class RequestBody implements Body, IdleWatched {
  stirred = false;
  reading = false;
  idleRounds = 0;
  owner: { idle(): void } | null = null;
  /** Bytes received from the client (the access log's `bytesIn`). */
  bytesIn = 0;
  private sink: BodySink | null = null;
  private queue: Buffer[] | null = null;
  /** The client is paused (`res.pause()`). */
  private paused = false;
  /** uWS has handed over the last chunk. */
  private last = false;
  /** Ended or destroyed: nothing more is passed on. */
  private done = false;
  /** Told how the rest of the body went while an error answer waits for it (`linger`); null once told. */
  private lingering: ((complete: boolean) => void) | null = null;
  private dropped = 0;
  private lingerTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * @param connection whether uWS still owns `res` (`gone`: the client went away, or the response ended)
   */
  constructor(private readonly res: HttpResponse, private readonly connection: { readonly gone: boolean }, readonly length: number | null) {}

  /** uWS `onData`. */
  onData(ab: ArrayBuffer, isLast: boolean): void {
    if (this.done) {
      if (this.lingering !== null) this.drop(ab.byteLength, isLast);
      return;
    }
    // uWS reuses the ArrayBuffer after this call returns: copy.
    const chunk = Buffer.from(new Uint8Array(ab));
    this.bytesIn += chunk.byteLength;
    if (isLast) this.last = true;
    if (this.sink !== null && this.queue === null && !this.paused) {
      if (chunk.byteLength > 0 && !this.write(chunk)) this.pauseClient();
    } else {
      if (chunk.byteLength > 0) (this.queue ??= []).push(chunk);
      this.pauseClient();
    }
    if (isLast && this.queue === null && this.sink !== null && !this.paused) this.end();
  }

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.reading = true;
    this.flush();
  }

  resume(): void {
    if (this.sink === null) return;
    this.reading = true;
    this.flush();
  }

  destroy(): void {
    this.reading = false;
    if (this.done) return;
    this.done = true;
    this.sink = null;
    this.queue = null;
    // Let uWS read and drop the rest rather than stall the connection.
    if (this.paused && !this.connection.gone) {
      this.paused = false;
      this.res.resume();
    }
  }

  /**
   * For an error answered while the body is still coming (a 413 from
   * Content-Length, a 404 decided from the head before uWS handed over the
   * body bytes it had read, an upstream that failed mid-upload): the rest is
   * read and dropped, and `then(true)` runs when its last chunk comes, so the
   * answer keeps the connection as for a complete body. Once more than
   * `LINGER_BYTES` was dropped or `LINGER_MS` passed, the client is paused
   * for good and `then(false)` runs (on a later turn, once uWS has handed
   * over what it had read): the answer says `Connection: close`, and uWS's
   * idle timer closes the connection ~10 s later, after the client could read
   * it (closing with the answer resets a client still writing, which then
   * loses it: Envoy's #2929). Never both, and neither once the client is gone.
   * Never paused before: a paused uWS 20.30 socket that has had its last
   * body chunk has no timer, and after the answer rxgate has no handle to
   * close it (review RA: 50 of 50 such connections stayed open for good).
   * Returns false when the body is complete: answer now.
   */
  linger(then: (complete: boolean) => void): boolean {
    if (this.last || this.connection.gone) return false;
    this.destroy();
    this.lingering = then;
    // Node's timer, unref'd, not a runtime's: the edge has none, and a drain must not wait for it (exchange-deadline.ts's realClock, same reason).
    const timer = setTimeout(() => this.cut(), LINGER_MS);
    timer.unref();
    this.lingerTimer = timer;
    return true;
  }

  private drop(bytes: number, isLast: boolean): void {
    if (isLast) {
      this.last = true;
      this.lingered(true);
      return;
    }
    this.dropped += bytes;
    if (this.dropped > LINGER_BYTES && this.lingerTimer !== null) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = null;
      setImmediate(() => this.cut());
    }
  }

  /** Cuts a linger now (the edge is draining: the answer must go out before the connection closes). */
  cut(): void {
    if (this.lingering === null || this.connection.gone) return;
    if (!this.paused) {
      this.paused = true;
      this.res.pause();
    }
    this.lingered(false);
  }

  private lingered(complete: boolean): void {
    const then = this.lingering;
    this.lingering = null;
    if (this.lingerTimer !== null) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
    if (then !== null && !this.connection.gone) then(complete);
  }

  private flush(): void {
    if (this.sink === null || this.done) return;
    // Re-read each time: the sink may destroy the body while it writes.
    while (this.queue !== null) {
      const chunk = this.queue.shift()!;
      if (this.queue.length === 0) this.queue = null;
      if (!this.write(chunk)) return;
    }
    if (this.done) return;
    if (this.last) {
      this.end();
      return;
    }
    if (this.paused) {
      this.paused = false;
      if (!this.connection.gone) this.res.resume();
    }
  }

  private write(chunk: Buffer): boolean {
    this.stirred = true;
    const more = this.sink!.write(chunk);
    // Held back by the pipeline (the upstream is slow): the client is paused, not idle.
    if (!more) this.reading = false;
    return more;
  }

  private end(): void {
    const sink = this.sink!;
    this.sink = null;
    this.done = true;
    this.reading = false;
    sink.end();
  }

  private pauseClient(): void {
    if (this.paused || this.last) return;
    this.paused = true;
    if (!this.connection.gone) this.res.pause();
  }
}

/**
 * `error` with `Connection: close` among its headers, for an answer that
 * leaves the client paused (`RequestBody.linger`): a copy, as errors may be
 * shared, of the same class, status and code.
 */
export function toldToClose(error: GatewayError): GatewayError {
  const fields: PropertyDescriptorMap = Object.getOwnPropertyDescriptors(error);
  fields['headers'] = { value: { ...error.headers, connection: 'close' }, enumerable: true };
  return Object.create(Object.getPrototypeOf(error) as object, fields) as GatewayError;
}
