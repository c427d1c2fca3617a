/**
 * The floor: a hand-written uWebSockets.js + undici forwarder with no RxJS and
 * no policies, to tell the cost of our stack from the cost of rxgate's
 * pipeline. It streams the upstream response with backpressure (undici's
 * controller.pause/resume against uWS tryEnd/onWritable) and aborts the
 * upstream request when the client goes away.
 *
 *   node --import ./bin/loader/register.mjs bench/minimal-forwarder.ts --port 8081 --upstream http://127.0.0.1:9000
 */
import { STATUS_CODES } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import type { HttpResponse } from 'uWebSockets.js';
import { onStop, portArg, requiredArg } from './args.ts';
import { loadUws } from '../lib/server/uws.ts';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus the ones the transport sets. */
const REQUEST_SKIP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host',
]);
/** uWS writes its own date, content-length and framing. */
const RESPONSE_SKIP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade',
  'content-length', 'date', 'uwebsockets',
]);

class ForwardHandler implements Dispatcher.DispatchHandler {
  controller: Dispatcher.DispatchController | null = null;
  /** The client went away (uWS onAborted): `res` must not be touched again. */
  clientGone = false;
  private finished = false;
  /** The response head, until it is written with the first chunk. */
  private status = '';
  private headers: Record<string, string | string[] | undefined> | null = null;
  /** The chunk being written by a cork callback. */
  private chunk: Buffer | null = null;
  /** Waiting for onWritable: undici's parser is paused. */
  private paused = false;
  /** Content-length of the upstream response, or -1 for a chunked response. */
  private total = -1;
  private pending: Buffer | null = null;
  private pendingOffset = 0;

  constructor(private readonly res: HttpResponse, private readonly head: boolean) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.clientGone) controller.abort(new Error('client aborted'));
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    if (this.clientGone) return;
    const length = headers['content-length'];
    this.total = typeof length === 'string' ? Number(length) : -1;
    // Kept, not written: the head goes out with the first body chunk (or the
    // end) in one corked send, one syscall for a small response.
    this.status = statusCode === 200 ? '200 OK' : `${statusCode} ${statusMessage || STATUS_CODES[statusCode] || ''}`;
    this.headers = headers;
  }

  /** Inside a cork: the status line and headers undici parsed, as they are (no object rebuilt). */
  private writeHead(): void {
    const headers = this.headers;
    if (headers === null) return;
    this.headers = null;
    const res = this.res;
    res.writeStatus(this.status);
    for (const name in headers) {
      if (RESPONSE_SKIP.has(name)) continue;
      const value = headers[name];
      if (value === undefined) continue;
      if (Array.isArray(value)) for (const v of value) res.writeHeader(name, v);
      else res.writeHeader(name, value);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientGone || this.finished) return;
    this.chunk = chunk;
    this.res.cork(this.total < 0 ? this.writeChunked : this.writeSized);
    this.chunk = null;
    if (this.paused) controller.pause();
  }

  /** Cork callbacks made once per exchange, not per chunk. */
  private readonly writeChunked = (): void => {
    this.writeHead();
    if (!this.res.write(this.chunk!)) {
      this.paused = true;
      this.res.onWritable(this.drained);
    }
  };

  private readonly writeSized = (): void => {
    this.writeHead();
    const res = this.res;
    const offset = res.getWriteOffset();
    const [ok, done] = res.tryEnd(this.chunk!, this.total);
    if (done) this.finished = true;
    else if (!ok) {
      this.pending = this.chunk;
      this.pendingOffset = offset;
      this.paused = true;
      res.onWritable(this.retry);
    }
  };

  private readonly drained = (): boolean => {
    this.paused = false;
    this.controller?.resume();
    return true;
  };

  /** uWS calls this when the socket drains: resend what tryEnd could not take. */
  private readonly retry = (offset: number): boolean => {
    const chunk = this.pending;
    if (chunk === null || this.clientGone) return true;
    const [ok, done] = this.res.tryEnd(chunk.subarray(offset - this.pendingOffset), this.total);
    if (done) {
      this.finished = true;
      this.pending = null;
    } else if (ok) {
      this.pending = null;
      this.paused = false;
      this.controller?.resume();
    }
    return ok;
  };

  onResponseEnd(): void {
    if (this.clientGone || this.finished) return;
    this.finished = true;
    const res = this.res;
    res.cork(() => {
      this.writeHead();
      if (this.total < 0) res.end();
      // HEAD (or an upstream that sent fewer bytes than announced): no body.
      else res.endWithoutBody(this.head ? this.total : 0);
    });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.clientGone || this.finished) return;
    this.finished = true;
    const res = this.res;
    if (this.headers === null && this.status !== '') {
      res.close(); // the head is out: only closing tells the client
      return;
    }
    res.cork(() => {
      res.writeStatus('502 Bad Gateway').writeHeader('content-type', 'text/plain').end(`bad gateway: ${error.message}`);
    });
  }
}

function main(): void {
  const uws = loadUws();
  const port = portArg();
  const pool = new Pool(requiredArg('upstream'), { connections: 128 });
  const app = uws.App();

  app.any('/*', (res, req) => {
    const method = req.getMethod().toUpperCase();
    const query = req.getQuery();
    const path = query ? `${req.getUrl()}?${query}` : req.getUrl();
    const headers: string[] = [];
    let hasBody = false;
    req.forEach((name, value) => {
      if (name === 'content-length') hasBody = value !== '0';
      else if (name === 'transfer-encoding') hasBody = true;
      if (!REQUEST_SKIP.has(name)) headers.push(name, value);
    });
    const handler = new ForwardHandler(res, method === 'HEAD');
    res.onAborted(() => {
      handler.clientGone = true;
      handler.controller?.abort(new Error('client aborted'));
    });
    if (!hasBody) {
      pool.dispatch({ method, path, headers, body: null }, handler);
      return;
    }
    // Request bodies are buffered: the bench sends none, this keeps POST correct.
    const chunks: Buffer[] = [];
    res.onData((chunk, isLast) => {
      chunks.push(Buffer.copyBytesFrom(new Uint8Array(chunk)));
      if (isLast && !handler.clientGone) {
        pool.dispatch({ method, path, headers, body: Buffer.concat(chunks) }, handler);
      }
    });
  });

  app.listen('127.0.0.1', port, (socket) => {
    if (!socket) {
      console.error(`minimal-forwarder: cannot listen on 127.0.0.1:${port}`);
      process.exit(1);
    }
    onStop(() => {
      uws.us_listen_socket_close(socket);
      void pool.destroy();
    });
  });
}

main();
