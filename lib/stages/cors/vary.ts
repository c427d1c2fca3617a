/**
 * Adds `token` to a flat response header list's `Vary` (in place): to the
 * first `vary` line, or as a new one. Nothing changes when `Vary: *` or the
 * token is already listed (any case).
 */
export function addVary(headers: string[], token: string): void {
  const lower = token.toLowerCase();
  let first = -1;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'vary') continue;
    if (first < 0) first = i;
    for (const t of headers[i + 1]!.split(',')) {
      const name = t.trim().toLowerCase();
      if (name === '*' || name === lower) return;
    }
  }
  if (first < 0) headers.push('vary', token);
  else headers[first + 1] = headers[first + 1]!.trim() === '' ? token : `${headers[first + 1]}, ${token}`;
}
