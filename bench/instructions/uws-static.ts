/**
 * The floor for an answer from memory: the uWS build rxgate runs on, one
 * plain handler answering every request with what a full-hit response of
 * the bench holds (status, the same 11 headers with fixed values, the
 * upstream's 1068-byte body), corked, one `writeHeader` per header, nothing
 * read from the request. What this costs under callgrind is uWS's and V8's
 * share of a hit; the rest of a full-hit request is rxgate's JavaScript.
 * docs/cache-hit.md ("Eighth round").
 *
 *   node --import ./bin/loader/register.mjs bench/instructions/uws-static.ts --port 9100
 */
import { argValue, onStop, portArg } from '../args.ts';
import { PAYLOAD } from '../payload.ts';
import { loadUws } from '../../lib/server/uws.ts';

/** A full-hit answer's headers as `npm run bench` sees them (bench/configs/full.yaml), values fixed. */
const HEADERS: readonly (readonly [string, string])[] = [
  ['content-type', 'application/json'],
  ['cache-control', 'max-age=60'],
  ['uwebsockets', '20'],
  ['x-gateway-attempts', '1'],
  ['x-cache', 'HIT'],
  ['age', '0'],
  ['ratelimit-limit', '1000000000'],
  ['ratelimit-remaining', '999999999'],
  ['ratelimit-reset', '1'],
  ['x-gateway-response-time', '0.1ms'],
  ['x-request-id', '2c95db126cff733a-1'],
];

function main(): void {
  const uws = loadUws();
  const port = portArg();
  const host = argValue('host') ?? '127.0.0.1';
  const body = Buffer.from(PAYLOAD);
  const app = uws.App();
  app.any('/*', (res) => {
    res.cork(() => {
      res.writeStatus('200 OK');
      for (let i = 0; i < HEADERS.length; i++) res.writeHeader(HEADERS[i]![0], HEADERS[i]![1]);
      res.end(body);
    });
  });
  app.listen(host, port, (socket) => {
    if (!socket) {
      console.error(`uws-static: cannot listen on ${host}:${port}`);
      process.exit(1);
    }
    onStop(() => uws.us_listen_socket_close(socket));
  });
}

main();
