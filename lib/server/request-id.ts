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

/** Counter ids made at a time (about 5 KiB of text). */
const BATCH = 256;
