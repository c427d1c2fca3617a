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
  private headSent = false;
  private finished = false;
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
    const res = this.res;
    res.cork(() => {
      res.writeStatus(`${statusCode} ${statusMessage || STATUS_CODES[statusCode] || ''}`);
      for (const name in headers) {
        if (RESPONSE_SKIP.has(name)) continue;
        const value = headers[name];
        if (value === undefined) continue;
        if (Array.isArray(value)) for (const v of value) res.writeHeader(name, v);
        else res.writeHeader(name, value);
      }
    });
    this.headSent = true;
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.clientGone || this.finished) return;
    const res = this.res;
    if (this.total < 0) {
      let ok = true;
      res.cork(() => {
        ok = res.write(chunk);
      });
      if (!ok) {
        controller.pause();
        res.onWritable(() => {
          controller.resume();
          return true;
        });
      }
      return;
    }
    res.cork(() => {
      const offset = res.getWriteOffset();
      const [ok, done] = res.tryEnd(chunk, this.total);
      if (done) this.finished = true;
      else if (!ok) {
        this.pending = chunk;
        this.pendingOffset = offset;
        controller.pause();
        res.onWritable(this.retry);
      }
    });
  }

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
      this.controller?.resume();
    }
    return ok;
  };

  onResponseEnd(): void {
    if (this.clientGone || this.finished) return;
    this.finished = true;
    const res = this.res;
    res.cork(() => {
      if (this.total < 0) res.end();
      // HEAD (or an upstream that sent fewer bytes than announced): no body.
      else res.endWithoutBody(this.head ? this.total : 0);
    });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.clientGone || this.finished) return;
    this.finished = true;
    const res = this.res;
    if (this.headSent) {
      res.close();
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
