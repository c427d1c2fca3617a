import type { GatewayRequest } from '../../lib/types.ts';

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
