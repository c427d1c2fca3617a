/** The chunks copied into one buffer of exactly `size` bytes (small ones share Node's 8 KiB pool slabs, which LRU order frees roughly in turn). */
export function compact(chunks: readonly Uint8Array[], size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
