import { util } from 'undici';
import { connectionTokens, HOP_BY_HOP } from '../headers.ts';

/**
 * What `copyResponseHeaders` returns for a `Transfer-Encoding` other than
 * `chunked` (e.g. `gzip, chunked`): undici decodes only `chunked`, so the
 * body would reach the client still coded, with no coding named. nginx
 * answers 502 "upstream sent unknown Transfer-Encoding".
 */
export const UNKNOWN_TRANSFER_CODING = -1;

/** Node's Buffer method behind `toString('latin1')` (not in its type definitions). */
type Latin1Sliceable = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * 1 at the lengths of hop-by-hop names: most headers (content-type,
 * cache-control, date, content-length…) are none of those lengths and skip
 * the set lookup.
 */
const HOP_BY_HOP_LENGTHS: readonly number[] = (() => {
  const lengths: number[] = [];
  for (const name of HOP_BY_HOP) lengths[name.length] = 1;
  return Array.from({ length: 32 }, (_, i) => lengths[i] ?? 0);
})();

/**
 * Copies an upstream response's raw header pairs (undici's `Buffer[]`) into
 * `headers` as name, value, ... without hop-by-hop headers or those the
 * `Connection` header names. Returns the `Content-Length`, null, or
 * `UNKNOWN_TRANSFER_CODING`.
 */
export function copyResponseHeaders(raw: readonly Buffer[], headers: string[]): number | null {
  let length: number | null = null;
  let named: Set<string> | null = null;
  let coded = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = nameText(raw[i]!, i >> 1);
    const value = valueText(raw[i + 1]! as Latin1Sliceable, i >> 1);
    if (name === 'connection') named = connectionTokens(value);
    else if (name === 'content-length') length = Number(value);
    else if (name === 'transfer-encoding' && value !== 'chunked' && value.toLowerCase() !== 'chunked') coded = true;
    if (HOP_BY_HOP_LENGTHS[name.length] === 1 && HOP_BY_HOP.has(name)) continue;
    headers.push(name, value);
  }
  if (named !== null) {
    for (let i = headers.length - 2; i >= 0; i -= 2) {
      if (named.has(headers[i]!)) headers.splice(i, 2);
    }
  }
  return coded ? UNKNOWN_TRANSFER_CODING : length;
}

/**
 * The last value seen at each position of a response head (first header,
 * second…), as bytes and as text. An upstream repeats most of its values
 * from one response to the next (content-type, cache-control, server, often
 * content-length), and comparing the bytes costs less than making the
 * string: `latin1Slice` is a call into Node's C++, ~870 instructions per
 * value under callgrind (docs/performance-instructions.md, eighth round).
 */
const SLOTS = 32;

/** Per position of a head: the last bytes seen there (a copy) and their text. */
class Recent {
  private readonly bytes: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(SLOTS).fill(undefined);
  private readonly text: string[] = new Array<string>(SLOTS).fill('');
  /** Misses in a row per slot: bytes that change every time are copied only now and then. */
  private readonly misses = new Int32Array(SLOTS);

  /** @param maxBytes longer bytes are not kept (the comparison would cost more than it saves) */
  constructor(readonly maxBytes: number) {}

  /** The text kept for `bytes` at `slot` (< SLOTS, `bytes` at most `maxBytes`), or null. */
  find(bytes: Uint8Array, slot: number): string | null {
    const last = this.bytes[slot];
    const n = bytes.length;
    if (last === undefined || last.length !== n) return null;
    let j = 0;
    while (j < n && last[j] === bytes[j]) j++;
    if (j !== n) return null;
    this.misses[slot] = 0;
    return this.text[slot]!;
  }

  /** After a miss: keeps `bytes` and their `text` at `slot` on the first two misses in a row, then every 32nd. */
  keep(bytes: Uint8Array, slot: number, text: string): void {
    const streak = ++this.misses[slot]!;
    if (streak > 2 && (streak & 31) !== 0) return;
    // A copy: undici's Buffer is a view of the socket's read, which is not ours to keep.
    const copy = new Uint8Array(bytes.length);
    copy.set(bytes);
    this.bytes[slot] = copy;
    this.text[slot] = text;
  }
}

const VALUES = new Recent(128);
const NAMES = new Recent(64);

/** `bytes` as latin1 text (what `toString('latin1')` returns), reusing the text of the same bytes at the same position last time. */
function valueText(bytes: Latin1Sliceable, slot: number): string {
  const n = bytes.length;
  if (slot >= SLOTS || n > VALUES.maxBytes) return bytes.latin1Slice(0, n);
  const kept = VALUES.find(bytes, slot);
  if (kept !== null) return kept;
  // What toString('latin1') returns, without its argument and encoding handling.
  const text = bytes.latin1Slice(0, n);
  VALUES.keep(bytes, slot, text);
  return text;
}

/**
 * A header name in lower case, as undici's `headerNameToString` gives it
 * (well-known names interned from its lookup tree, others lower-cased),
 * reusing the name of the same bytes at the same position last time: the
 * tree walks several nodes per character, the comparison one step each.
 */
function nameText(bytes: Buffer, slot: number): string {
  if (slot >= SLOTS || bytes.length > NAMES.maxBytes) return util.headerNameToString(bytes);
  const kept = NAMES.find(bytes, slot);
  if (kept !== null) return kept;
  const text = util.headerNameToString(bytes);
  NAMES.keep(bytes, slot, text);
  return text;
}

/** Server-Sent Events: long-lived, quiet between events, so only the route's `streamIdleTimeout` bounds their gaps. */
export function isEventStream(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'content-type') return headers[i + 1]!.toLowerCase().startsWith('text/event-stream');
  }
  return false;
}
