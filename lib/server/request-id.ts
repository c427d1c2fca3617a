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
  // The next BATCH ids end to end in one string, and where each starts:
  // each id is a slice of it. `prefix + n` per request made a rope
  // (ConsString) that undici's value check, the head writer and the access
  // log then each had V8 flatten through its runtime
  // (docs/performance-instructions.md, eighth round). A slice is flat.
  let batch = '';
  const starts = new Int32Array(BATCH + 1);
  let i = BATCH;
  return function nextRequestId() {
    if (i === BATCH) {
      const ids: string[] = [];
      for (let k = 0; k < BATCH; k++) {
        starts[k] = k === 0 ? 0 : starts[k - 1]! + ids[k - 1]!.length;
        ids.push(prefix + (n + k + 1));
      }
      starts[BATCH] = starts[BATCH - 1]! + ids[BATCH - 1]!.length;
      batch = ids.join('');
      n += BATCH;
      i = 0;
    }
    const id = batch.substring(starts[i]!, starts[i + 1]!);
    i++;
    return id;
  };
}

/**
 * Counter ids made at a time (~350 characters of text). Small: a slice of 13
 * characters or more keeps its whole batch alive in V8 (a sliced string), so
 * a request held open (SSE, a slow upstream) pins its batch: 256 ids pinned
 * ~5.6 KB each (review RP: 10,000 kept ids, 155 MB with traceparents).
 */
const BATCH = 16;

/** The longest client `X-Request-Id` kept (a UUID is 36 characters, a W3C trace id 32). */
export const MAX_CLIENT_REQUEST_ID = 200;

/**
 * Whether a client's `X-Request-Id` is kept as the request's id: 1 to 200
 * characters, each visible ASCII (0x21-0x7e: no space, tab, control or
 * non-ASCII character). Any other is replaced by the gateway's own, so a
 * client cannot make every log line, the upstream request and the answer
 * carry 3,000 characters (audit A5). Envoy replaces a client's id at the edge
 * unless `preserve_external_request_id` is set; nginx's `$request_id` is its
 * own, whatever the client sent; Kong's correlation-id plugin keeps any
 * value. The loop runs only on requests that carry the header.
 */
export function acceptableRequestId(id: string): boolean {
  const n = id.length;
  if (n === 0 || n > MAX_CLIENT_REQUEST_ID) return false;
  for (let i = 0; i < n; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}
