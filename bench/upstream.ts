/**
 * The fixed upstream every target forwards to: uWebSockets.js (so it is not
 * the bottleneck) answering every request with the same ~1 KB JSON document,
 * keep-alive, cacheable for 60 s (the cache hit-path target relies on that;
 * the other targets ignore it).
 *
 *   node --import ./bin/loader/register.mjs bench/upstream.ts --port 9000
 */
import { argValue, onStop, portArg } from './args.ts';
import { PAYLOAD } from './payload.ts';
import { loadUws } from '../lib/server/uws.ts';

function noop(): void {}

function main(): void {
  const uws = loadUws();
  const port = portArg();
  const host = argValue('host') ?? '127.0.0.1';
  const body = Buffer.from(PAYLOAD);
  const app = uws.App();
  app.any('/*', (res, req) => {
    const method = req.getMethod();
    const reply = (): void => {
      res.cork(() => {
        res
          .writeStatus('200 OK')
          .writeHeader('content-type', 'application/json')
          .writeHeader('cache-control', 'max-age=60');
        if (method === 'head') res.endWithoutBody(body.length);
        else res.end(body);
      });
    };
    if (method === 'get') {
      reply();
      return;
    }
    if (method === 'head') {
      // This uWS build aborts the process if only endWithoutBody answers
      // without an abort handler attached.
      res.onAborted(noop);
      reply();
      return;
    }
    // Drain a request body before answering; the bench only sends GETs.
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    res.onData((_chunk, isLast) => {
      if (isLast && !aborted) reply();
    });
  });
  app.listen(host, port, (socket) => {
    if (!socket) {
      console.error(`upstream: cannot listen on ${host}:${port}`);
      process.exit(1);
    }
    onStop(() => uws.us_listen_socket_close(socket));
  });
}

main();
