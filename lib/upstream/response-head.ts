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
    // Well-known names come interned and lower-cased from undici's lookup tree (no string made per header).
    const name = util.headerNameToString(raw[i]!);
    const bytes = raw[i + 1]! as Latin1Sliceable;
    // What toString('latin1') returns, without its argument and encoding handling: ~140 instructions fewer per value.
    const value = bytes.latin1Slice(0, bytes.length);
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

/** Server-Sent Events: long-lived, quiet between events, so only the route's `streamIdleTimeout` bounds their gaps. */
export function isEventStream(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === 'content-type') return headers[i + 1]!.toLowerCase().startsWith('text/event-stream');
  }
  return false;
}
