import type { HttpResponse } from 'uWebSockets.js';
import type { Body, BodySink } from '../types.ts';

/** What the request body needs to know of its exchange: whether uWS still owns `res`. */
export interface ResponseState {
  readonly closed: boolean;
}

/**
 * The client's request body, read from uWS `onData` with backpressure: when
 * the sink (undici's upload) is full, or nobody has asked for the body yet,
 * the socket is paused (`res.pause()`), so memory stays at one chunk whatever
 * the body's size. `onData` must be attached inside the uWS handler, before
 * any stage has run, or the first chunks would be lost.
 */
export class UwsRequestBody implements Body {
  private sink: BodySink | null = null;
  private queue: Buffer[] = [];
  private paused = false;
  private last = false;
  private destroyed = false;

  constructor(private readonly res: HttpResponse, private readonly state: ResponseState, readonly length: number | null) {
    res.onData((ab, isLast) => this.onData(ab, isLast));
  }

  private onData(ab: ArrayBuffer, isLast: boolean): void {
    if (this.destroyed) return;
    // uWS reuses the ArrayBuffer after this call returns: copy.
    const chunk = Buffer.from(new Uint8Array(ab));
    if (isLast) this.last = true;
    const sink = this.sink;
    if (sink !== null && this.queue.length === 0 && !this.paused) {
      if (chunk.byteLength > 0 && !sink.write(chunk)) this.pause();
    } else {
      if (chunk.byteLength > 0) this.queue.push(chunk);
      this.pause();
    }
    if (isLast && this.queue.length === 0 && this.sink !== null && !this.paused) this.finish();
  }

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.resume();
  }

  resume(): void {
    const sink = this.sink;
    if (sink === null || this.destroyed) return;
    while (this.queue.length > 0) {
      if (!sink.write(this.queue.shift()!)) return;
    }
    if (this.last) {
      this.finish();
      return;
    }
    if (this.paused) {
      this.paused = false;
      if (!this.state.closed) this.res.resume();
    }
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.sink = null;
    this.queue = [];
    // Let uWS read and drop the rest rather than stall the connection.
    if (this.paused && !this.state.closed) this.res.resume();
  }

  private pause(): void {
    if (this.paused || this.last) return;
    this.paused = true;
    if (!this.state.closed) this.res.pause();
  }

  private finish(): void {
    const sink = this.sink!;
    this.sink = null;
    this.destroyed = true;
    sink.end();
  }
}
