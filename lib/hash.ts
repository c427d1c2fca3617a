/**
 * FNV-1a, 32 bits: a few instructions per character and well spread over
 * short keys. One function for the hash balancer's ring, the cache's
 * coalescing table and the memory store's index.
 */
const OFFSET = 0x811c9dc5 | 0;
const PRIME = 0x01000193;

/** FNV-1a over a string's UTF-16 code units, as a signed 32-bit integer. */
export function fnv1a(s: string): number {
  let h = OFFSET;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), PRIME);
  return h;
}

/** FNV-1a over `bytes[0, n)`, as a signed 32-bit integer. */
export function fnv1aBytes(bytes: Uint8Array, n: number): number {
  let h = OFFSET;
  for (let i = 0; i < n; i++) h = Math.imul(h ^ bytes[i]!, PRIME);
  return h;
}
