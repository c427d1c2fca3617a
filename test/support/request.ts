import { collectBody } from '../../lib/body.ts';
import type { GatewayError } from '../../lib/errors.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';

/**
 * A `GatewayRequest` as the edge would hand it to the first stage, for tests
 * that call a handler directly: `GET /` from 127.0.0.1 over http, no headers,
 * no body, first attempt. `normalizedPath` follows `path` unless given.
 */
export function gatewayRequest(over: Partial<GatewayRequest> = {}): GatewayRequest {
  const path = over.path ?? '/';
  return {
    id: 'r1', method: 'GET', path, query: '', normalizedPath: path, headers: {},
    remoteAddress: '127.0.0.1', protocol: 'http', body: null, params: {}, receivedAt: 0, locals: {},
    attempt: { number: 1, tried: [], instance: null }, ...over,
  };
}

/** Runs `req` through a handler that answers synchronously (no I/O, a memory store): its response, or its error. */
export function callNow(handler: Handler, req: GatewayRequest): GatewayResponse | GatewayError {
  let out: GatewayResponse | GatewayError | undefined;
  handler(req).subscribe({ next: (r) => { out = r; }, error: (e: unknown) => { out = e as GatewayError; } });
  if (out === undefined) throw new Error('the handler did not answer synchronously');
  return out;
}

/** Runs `req` through `handler` to completion: the response, and its body read whole (null when it has none). */
export function respond(handler: Handler, req: GatewayRequest): Promise<{ response: GatewayResponse; body: Buffer | null }> {
  return new Promise((resolve, reject) => {
    let response: GatewayResponse | undefined;
    let body: Promise<Buffer | null> = Promise.resolve(null);
    handler(req).subscribe({
      next(r) {
        response = r;
        if (r.body !== null) body = collectBody(r.body);
      },
      error: reject,
      complete() {
        void body.then((b) => resolve({ response: response!, body: b }), reject);
      },
    });
  });
}
