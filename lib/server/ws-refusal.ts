import type { IncomingMessage } from 'node:http';
import { BufferedBody } from '../body.ts';
import { UnrelayableAnswerError } from '../errors.ts';
import { connectionTokens, HOP_BY_HOP } from '../headers.ts';
import type { GatewayResponse } from '../types.ts';

/** The most of a refusal's body the gateway holds to pass on; past it the refusal is a 502 (not retried, not counted by a breaker). */
export const REFUSAL_BODY_LIMIT = 1024 * 1024; // 1 MiB

/** Headers of the upstream's `101` that the edge (uWS's `upgrade`) writes itself, or that describe a negotiation it did not make. */
export const HANDSHAKE_ANSWER: ReadonlySet<string> = new Set([
  'sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions', 'content-length', 'date',
]);

/**
 * An upstream answer's raw header lines (Node's `rawHeaders`) as a flat
 * `[name, value, …]` list for the client: names lower-cased, without
 * hop-by-hop headers, those its `Connection` names, and those in `drop`.
 */
export function relayedHeaders(raw: readonly string[], drop: ReadonlySet<string> | null = null): string[] {
  const headers: string[] = [];
  let named: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'connection') named = connectionTokens(raw[i + 1]);
    if (!HOP_BY_HOP.has(name) && drop?.has(name) !== true) headers.push(name, raw[i + 1]!);
  }
  if (named !== null) {
    for (let i = headers.length - 2; i >= 0; i -= 2) if (named.has(headers[i]!)) headers.splice(i, 2);
  }
  return headers;
}

/**
 * An upstream that answers an opening handshake with anything but `101`
 * (401 for a bad token, 403 for an Origin it refuses, 404, 426, a 503 of its
 * own…) has answered: the client gets that answer as an ordinary HTTP
 * response, status, headers (hop-by-hop ones dropped) and body, as nginx and
 * Envoy pass it on. A 502 in its place told the client nothing, and being a
 * retryable gateway error, it was repeated and counted by the service's
 * circuit breaker: a few refused upgrades from one client opened it for
 * every request to the service.
 */
export function refusalResponse(res: IncomingMessage, limit = REFUSAL_BODY_LIMIT): Promise<GatewayResponse> {
  return new Promise((resolve, reject) => {
    const headers = relayedHeaders(res.rawHeaders);
    const chunks: Buffer[] = [];
    let size = 0;
    let ended = false;
    res.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size > limit) {
        res.destroy();
        reject(new UnrelayableAnswerError(`upstream refused the WebSocket upgrade with ${res.statusCode} and a body over ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => {
      ended = true;
      const status = res.statusCode ?? 502;
      resolve({ status, ...(res.statusMessage ? { statusText: res.statusMessage } : {}), headers, body: size === 0 ? null : new BufferedBody(chunks) });
    });
    res.on('close', () => {
      if (!ended && size <= limit) reject(new UnrelayableAnswerError(`upstream refused the WebSocket upgrade with ${res.statusCode} and its body was cut short`));
    });
  });
}
