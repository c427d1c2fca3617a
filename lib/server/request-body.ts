import type { HttpResponse } from 'uWebSockets.js';
import type { GatewayError } from '../errors.ts';
import type { Body, BodySink } from '../types.ts';
import type { IdleWatched } from './limits-cores.ts';

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

  /**
   * @param connection whether uWS still owns `res` (`gone`: the client went away, or the response ended)
   */
  constructor(private readonly res: HttpResponse, private readonly connection: { readonly gone: boolean }, readonly length: number | null) {}

  /** uWS `onData`. */
  onData(ab: ArrayBuffer, isLast: boolean): void {
    if (this.done) return;
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
   * Stops reading a body that is still coming, for good: its answer refuses
   * it (413). The client stays paused, so no more than the socket buffers
   * hold is read, where `destroy` lets uWS read and drop the rest (an endless
   * chunked body: for ever). The answer says `Connection: close` (`toldToClose`); a client
   * that keeps sending instead is closed at uWS's idle timeout (~10 s), after
   * it could read the answer, as nginx's lingering close does. Returns
   * whether the body was still coming (else nothing changes).
   */
  hold(): boolean {
    if (this.last || this.connection.gone) return false;
    this.destroy();
    if (!this.paused) {
      this.paused = true;
      this.res.pause();
    }
    return true;
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
 * `error` with `Connection: close` among its headers, for an answer given
 * while its body is held (`RequestBody.hold`): a copy, as errors may be
 * shared, of the same class, status and code.
 */
export function toldToClose(error: GatewayError): GatewayError {
  const fields: PropertyDescriptorMap = Object.getOwnPropertyDescriptors(error);
  fields['headers'] = { value: { ...error.headers, connection: 'close' }, enumerable: true };
  return Object.create(Object.getPrototypeOf(error) as object, fields) as GatewayError;
}
