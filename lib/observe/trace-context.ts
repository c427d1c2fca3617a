import { randomFillSync } from 'node:crypto';

/**
 * W3C Trace Context (`traceparent`) without the OpenTelemetry API: what the
 * gateway does on every request even when no tracer is registered, so it
 * must stay cheap. Ids come from a pooled random buffer refilled 4 KiB at a
 * time (one `randomFillSync` and one formatting per 170 requests), not
 * `randomUUID` per request.
 */

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let used = POOL_SIZE;

/** `version-traceid-parentid-flags`, lower-case hex; a later version may append `-…`. */
const SHAPE = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:-|$)/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/** Offset of `n` fresh random bytes in `pool`. */
function take(n: number): number {
  if (used + n > POOL_SIZE) {
    randomFillSync(pool);
    used = 0;
  }
  const at = used;
  used += n;
  return at;
}

/** Ids of one `traceparent`: 16 bytes of trace id, 8 of parent id. */
const ID_BYTES = 24;
const TRACEPARENT_LENGTH = 55;
/**
 * `traceparent`s formatted at a time, end to end in one string (880
 * characters). Small, as request-id.ts's batch: each value is a slice that
 * keeps its batch alive for as long as its request holds it.
 */
const PER_BATCH = 16;
const batchBytes = Buffer.allocUnsafe(PER_BATCH * TRACEPARENT_LENGTH);
const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const DASH = 45, ZERO = 48, ONE = 49;
let formatted = '';
let nextFormatted = PER_BATCH;

/** Byte `b` of `pool` as two hex digits into `batchBytes` at `o`. */
function putHex(o: number, b: number): void {
  batchBytes[o] = HEX_DIGITS[b >> 4]!;
  batchBytes[o + 1] = HEX_DIGITS[b & 15]!;
}

/** `version-traceid-parentid-flags` for each 24 fresh random bytes of one refill, as one string. */
function formatBatch(): void {
  let o = 0;
  for (let i = 0; i < PER_BATCH; i++) {
    const at = take(ID_BYTES);
    batchBytes[o] = ZERO;
    batchBytes[o + 1] = ZERO;
    batchBytes[o + 2] = DASH;
    o += 3;
    for (let k = 0; k < 16; k++, o += 2) putHex(o, pool[at + k]!);
    batchBytes[o++] = DASH;
    for (let k = 16; k < ID_BYTES; k++, o += 2) putHex(o, pool[at + k]!);
    batchBytes[o] = DASH;
    batchBytes[o + 1] = ZERO;
    batchBytes[o + 2] = ONE;
    o += 3;
  }
  formatted = batchBytes.toString('latin1', 0, o);
  nextFormatted = 0;
}

/**
 * A new `traceparent`: a fresh trace id and parent id, flags `01` (sampled),
 * so upstream services with parent-based sampling keep tracing as they would
 * for a request that came without one.
 *
 * A slice of one string holding 16 values: four concatenations
 * per request made a rope (ConsString), which undici's value check then had
 * to flatten through V8's runtime before its regular expression could scan
 * it (docs/performance-instructions.md, eighth round). A slice is flat.
 */
export function newTraceparent(): string {
  if (nextFormatted === PER_BATCH) formatBatch();
  const at = nextFormatted++ * TRACEPARENT_LENGTH;
  return formatted.substring(at, at + TRACEPARENT_LENGTH);
}

/**
 * Whether a `traceparent` value can be propagated (W3C Trace Context level 1
 * §3.2): lower-case hex fields, version not `ff`, version `00` exactly 55
 * characters, trace id and parent id not all zeros.
 */
export function isValidTraceparent(value: string): boolean {
  if (value.length < 55 || !SHAPE.test(value)) return false;
  if (value.startsWith('00')) {
    if (value.length !== 55) return false;
  } else if (value.startsWith('ff')) return false;
  return !value.startsWith(ZERO_TRACE, 3) && !value.startsWith(ZERO_SPAN, 36);
}

/** The trace id of a valid `traceparent`. */
export function traceIdOf(traceparent: string): string {
  return traceparent.substring(3, 35);
}

/** The parent (span) id of a valid `traceparent`. */
export function parentIdOf(traceparent: string): string {
  return traceparent.substring(36, 52);
}

/** The sampled flag of a valid `traceparent`. */
export function sampledOf(traceparent: string): boolean {
  return (parseInt(traceparent.substring(53, 55), 16) & 1) === 1;
}

/** A version-00 `traceparent` for a span. */
export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return '00-' + traceId + '-' + spanId + (sampled ? '-01' : '-00');
}

/**
 * Makes `headers.traceparent` one to propagate: the client's when valid,
 * else a new one (an invalid one's `tracestate` is dropped with it, as the
 * spec says). Returns whether the client's was kept.
 */
export function ensureTraceparent(headers: Record<string, string>): boolean {
  const given = headers.traceparent;
  if (given !== undefined && isValidTraceparent(given)) return true;
  if (given !== undefined && headers.tracestate !== undefined) delete headers.tracestate;
  headers.traceparent = newTraceparent();
  return false;
}
