import { STATUS_CODES } from 'node:http';
import type { HttpResponse } from 'uWebSockets.js';
import { NON_ASCII } from '../headers.ts';
import type { Body, BodySink, GatewayResponse } from '../types.ts';

/** Headers uWS writes itself, or that must not be copied from the upstream. */
const SKIP = new Set(['content-length', 'date', 'transfer-encoding', 'connection', 'keep-alive']);

const statusLines = new Map<number, string>();
export function statusLine(status: number, text?: string): string {
  const standard = STATUS_CODES[status];
  if (text !== undefined && text !== '' && text !== standard) return `${status} ${text}`;
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `${status} ${standard ?? 'Unknown'}`;
    statusLines.set(status, line);
  }
  return line;
}

/**
 * Writes one response to a uWS `HttpResponse`: head, then the body with
 * backpressure — `tryEnd` when the length is known (uWS sets
 * Content-Length), chunked `write` otherwise — resuming the source from
 * `onWritable`. All calls after the uWS handler returned are corked.
 */
export class ResponseWriter implements BodySink {
  /** Set once uWS no longer owns `res` (aborted or ended). */
  closed = false;
  private body: Body | null = null;
  private total = 0;
  private pending: Uint8Array | null = null;
  private pendingOffset = 0;
  /** A head not yet written: it goes out with the first body chunk, in one send. */
  private head: GatewayResponse | null = null;
  private extra: readonly string[] = [];

  constructor(private readonly res: HttpResponse) {}

  /**
   * Starts the response; `extra` is a flat list of headers the edge adds.
   * Without a body it is written and ended at once. With one, the head waits
   * for the first chunk (undici usually delivers both in the same tick) so
   * head and body leave in one corked send; a microtask writes it alone if
   * the body is slow to start.
   */
  writeHead(response: GatewayResponse, extra: readonly string[], isHead: boolean): void {
    const res = this.res;
    const body = response.body;
    if (body === null || isHead) {
      if (body !== null) body.destroy();
      this.closed = true;
      res.cork(() => {
        const contentLength = this.writeHeaders(response, extra);
        const status = response.status;
        if (status === 204 || status === 304 || (status >= 100 && status < 200)) res.endWithoutBody();
        else if (isHead) {
          const n = contentLength !== undefined ? Number(contentLength) : body?.length ?? undefined;
          // endWithoutBody(n) waits for n body bytes in this uWS build: write the header ourselves.
          if (n !== undefined && Number.isFinite(n)) res.writeHeader('content-length', String(n));
          res.endWithoutBody();
        } else res.end();
      });
      return;
    }
    this.head = response;
    this.extra = extra;
    this.body = body;
    if (body.length !== null) this.total = body.length;
    res.onWritable((offset) => this.onWritable(offset));
    body.pipe(this);
    if (this.head !== null) queueMicrotask(() => this.flushHead());
  }

  private flushHead(): void {
    if (this.head === null || this.closed) return;
    const head = this.head;
    this.res.cork(() => this.writeHeaders(head, this.extra));
  }

  /** Status line and headers; returns the upstream's content-length, if any. */
  private writeHeaders(response: GatewayResponse, extra: readonly string[]): string | undefined {
    const res = this.res;
    const headers = response.headers;
    let contentLength: string | undefined;
    res.writeStatus(statusLine(response.status, response.statusText));
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!;
      const value = headers[i + 1]!;
      if (SKIP.has(name)) {
        if (name === 'content-length') contentLength = value;
        continue;
      }
      // Header bytes pass through as received (undici gives them as latin1).
      res.writeHeader(name, NON_ASCII.test(value) ? Buffer.from(value, 'latin1') : value);
    }
    for (let i = 0; i < extra.length; i += 2) res.writeHeader(extra[i]!, extra[i + 1]!);
    this.head = null;
    return contentLength;
  }

  /** Writes a complete small response (errors, built-in endpoints). */
  writeSimple(status: number, headers: readonly string[], payload: string): void {
    const res = this.res;
    res.cork(() => {
      res.writeStatus(statusLine(status));
      for (let i = 0; i < headers.length; i += 2) res.writeHeader(headers[i]!, headers[i + 1]!);
      res.end(payload);
    });
    this.closed = true;
  }

  write(chunk: Uint8Array): boolean {
    if (this.closed) return false;
    const res = this.res;
    const head = this.head;
    if (this.body!.length === null) {
      let ok = false;
      res.cork(() => {
        if (head !== null) this.writeHeaders(head, this.extra);
        ok = res.write(chunk);
      });
      return ok;
    }
    let offset = 0;
    let result: [boolean, boolean] = [false, false];
    res.cork(() => {
      if (head !== null) this.writeHeaders(head, this.extra);
      offset = res.getWriteOffset();
      result = res.tryEnd(chunk, this.total);
    });
    if (result[1]) {
      this.closed = true;
      return true;
    }
    if (!result[0]) {
      this.pending = chunk;
      this.pendingOffset = offset;
      return false;
    }
    return true;
  }

  end(): void {
    if (this.closed) return;
    this.closed = true;
    const res = this.res;
    const head = this.head;
    if (this.body!.length === null || this.total === 0) {
      res.cork(() => {
        if (head !== null) this.writeHeaders(head, this.extra);
        res.end();
      });
    } else {
      // The body ended short of its Content-Length: never pass it off as complete.
      res.close();
    }
  }

  /** The upstream failed after the head was sent: close the connection. */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    this.res.close();
  }

  private onWritable(offset: number): boolean {
    if (this.closed) return true;
    const pending = this.pending;
    if (pending !== null) {
      const [ok, done] = this.res.tryEnd(pending.subarray(offset - this.pendingOffset), this.total);
      if (done) {
        this.closed = true;
        return true;
      }
      if (!ok) return false;
      this.pending = null;
    }
    this.body?.resume();
    return true;
  }
}
