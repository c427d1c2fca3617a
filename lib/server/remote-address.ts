import type { HttpResponse } from 'uWebSockets.js';

/** IPv4 addresses seen lately, as text: a client's next request on its connection costs a lookup. */
const v4 = new Map<number, string>();
const V4_CACHE_MAX = 4096;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * The peer's address as nginx's `$remote_addr` and Envoy write it: dotted
 * IPv4, also for an IPv4 client of a dual-stack (`::`) listener, which uWS
 * shows as `0000:0000:0000:0000:0000:ffff:7f00:0001`; IPv6 per RFC 5952
 * (`::1`). Until session 13 uWS's text (`addressText`) went into X-Forwarded-For, X-Real-IP
 * and the access log as it was (audit A15): one client, two spellings, and
 * an app comparing the hop with `127.0.0.1` found no match. An IPv4 client
 * costs what it did on an IPv4 listener (the same cache); an IPv6 one its
 * RFC 5952 text written from the bytes.
 */
export function peerAddressOf(res: HttpResponse): string {
  const bytes = new Uint8Array(res.getRemoteAddress());
  if (bytes.length === 4) return v4Text(bytes, 0);
  if (bytes.length !== 16) return '';
  if (bytes[10] === 0xff && bytes[11] === 0xff && bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0 && bytes[3] === 0 && bytes[4] === 0
    && bytes[5] === 0 && bytes[6] === 0 && bytes[7] === 0 && bytes[8] === 0 && bytes[9] === 0) return v4Text(bytes, 12);
  return v6Text(bytes);
}

/**
 * RFC 5952 text of 16 bytes that are not IPv4-mapped: groups in lower-case hex without leading zeros, the longest
 * run of two or more zero groups (the first of equal ones) as `::`. Written from the bytes (~120 ns), where a parse
 * of uWS's text cost ~2.5 µs for each client past the 1,024 IPv6 texts cidr.ts keeps (review RI).
 */
function v6Text(bytes: Uint8Array): string {
  let bestAt = -1;
  let bestLength = 1;
  let runAt = -1;
  for (let i = 0; i < 8; i++) {
    if (bytes[2 * i] !== 0 || bytes[2 * i + 1] !== 0) runAt = -1;
    else {
      if (runAt < 0) runAt = i;
      if (i - runAt + 1 > bestLength) {
        bestLength = i - runAt + 1;
        bestAt = runAt;
      }
    }
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestAt) {
      out += '::';
      i += bestLength - 1;
      continue;
    }
    if (i > 0 && i !== bestAt + bestLength) out += ':';
    out += ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16);
  }
  return out;
}

/** The dotted text of the four bytes at `at`, from the cache of recent IPv4 addresses. */
function v4Text(bytes: Uint8Array, at: number): string {
  const key = ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
  let text = v4.get(key);
  if (text === undefined) {
    text = `${bytes[at]}.${bytes[at + 1]}.${bytes[at + 2]}.${bytes[at + 3]}`;
    if (v4.size >= V4_CACHE_MAX) v4.clear();
    v4.set(key, text);
  }
  return text;
}

/** uWS's text form of a binary address (exported for unit tests). */
export function addressText(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) return '';
  let out = HEX[bytes[0]!]! + HEX[bytes[1]!]!;
  for (let i = 2; i < 16; i += 2) out += ':' + HEX[bytes[i]!]! + HEX[bytes[i + 1]!]!;
  return out;
}
