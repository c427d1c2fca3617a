import type { HttpResponse } from 'uWebSockets.js';

/** IPv4 addresses seen lately, as text: a client's next request on its connection costs a lookup. */
const v4 = new Map<number, string>();
const V4_CACHE_MAX = 4096;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The peer's address as text, exactly as uWS's `getRemoteAddressAsText()`
 * writes it (`127.0.0.1`; IPv6 as eight 4-digit groups,
 * `0000:0000:0000:0000:0000:ffff:7f00:0001`), from the binary
 * `getRemoteAddress()`: the same one `getpeername` call, without the text
 * ArrayBuffer and its Buffer round trip.
 */
export function remoteAddressOf(res: HttpResponse): string {
  const bytes = new Uint8Array(res.getRemoteAddress());
  if (bytes.length === 4) {
    const key = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
    let text = v4.get(key);
    if (text === undefined) {
      text = `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
      if (v4.size >= V4_CACHE_MAX) v4.clear();
      v4.set(key, text);
    }
    return text;
  }
  return addressText(bytes);
}

/** uWS's text form of a binary address (exported for unit tests). */
export function addressText(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) return '';
  let out = HEX[bytes[0]!]! + HEX[bytes[1]!]!;
  for (let i = 2; i < 16; i += 2) out += ':' + HEX[bytes[i]!]! + HEX[bytes[i + 1]!]!;
  return out;
}
