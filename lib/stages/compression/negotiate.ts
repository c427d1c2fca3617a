/** A content coding the gateway can produce. */
export type Encoding = 'br' | 'gzip' | 'zstd';

/**
 * The coding to send, from an `Accept-Encoding` value (RFC 9110 §12.5.3):
 * the offered coding with the highest q-value above 0, ties going to the
 * first in `offered` (the gateway's preference); null for identity — no
 * header, nothing acceptable, or identity preferred over every coding.
 * `*` stands for every coding not named; `x-gzip` is `gzip`; a malformed
 * q-value counts as 0 (refused), never as 1.
 */
export function negotiate(accept: string | undefined, offered: readonly Encoding[]): Encoding | null {
  if (accept === undefined || accept === '') return null;
  let star = -1;
  let identity = -1;
  const q: Record<string, number> = {};
  for (const part of accept.split(',')) {
    const semi = part.indexOf(';');
    let name = (semi < 0 ? part : part.slice(0, semi)).trim().toLowerCase();
    if (name === '') continue;
    if (name === 'x-gzip') name = 'gzip';
    const value = semi < 0 ? 1 : qValue(part.slice(semi + 1));
    if (name === '*') star = value;
    else if (name === 'identity') identity = value;
    // A coding named twice: the higher q holds.
    else q[name] = Math.max(q[name] ?? -1, value);
  }
  let best: Encoding | null = null;
  let bestQ = 0;
  for (const e of offered) {
    const v = q[e] ?? (star >= 0 ? star : 0);
    if (v > bestQ) {
      best = e;
      bestQ = v;
    }
  }
  // Identity is always acceptable, but preferred only when named with a higher q.
  const identityQ = identity >= 0 ? identity : 0;
  // Identity preferred outright (`gzip;q=0.1, identity`): send it as it is.
  return best !== null && bestQ >= identityQ ? best : null;
}

/** The q of `;q=0.8` (other parameters ignored); 0 when malformed. */
function qValue(params: string): number {
  for (const p of params.split(';')) {
    const t = p.trim();
    if (t.length < 2 || (t.charCodeAt(0) | 32) !== 113 /* q */ || t.charCodeAt(1) !== 61 /* = */) continue;
    const v = t.slice(2);
    return /^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(v) ? Number(v) : 0;
  }
  return 1;
}
