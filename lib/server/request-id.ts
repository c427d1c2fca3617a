import { randomBytes, randomUUID } from 'node:crypto';

/**
 * How the edge names a request that came without `X-Request-Id`:
 * `counter` (default) is a per-process random prefix and a counter, as
 * Envoy's and nginx's ids are cheap; `uuid` is a random UUID v4 each time
 * (`crypto.randomUUID`, about four times the cost).
 */
export type RequestIdKind = 'counter' | 'uuid';

/**
 * A generator of request ids. `counter` ids look like
 * `5f0c2a9e41b7d3c8-1`, `…-2`: 64 random bits drawn once per process (each
 * worker thread draws its own) keep ids from different processes apart, the
 * counter keeps them apart within one.
 */
export function requestIds(kind: RequestIdKind = 'counter'): () => string {
  if (kind === 'uuid') return randomUUID;
  if (kind !== 'counter') throw new TypeError(`requestId must be 'counter' or 'uuid', got ${JSON.stringify(kind)}`);
  const prefix = randomBytes(8).toString('hex') + '-';
  let n = 0;
  return function nextRequestId() {
    return prefix + ++n;
  };
}
