/**
 * A copy of a response's header list with `extra` more slots at its end for
 * the caller to fill (rate limit's `ratelimit-*`, retry's attempts header),
 * allocated at its final size: `slice` + `push` would grow the copy once
 * more, a second and larger backing store per response.
 */
export function headersWithRoom(headers: readonly string[], extra: number): string[] {
  const n = headers.length;
  const out = new Array<string>(n + extra);
  for (let i = 0; i < n; i++) out[i] = headers[i]!;
  return out;
}
