/** Request headers the gateway writes itself after the header rules (a client's copy, and a rule's, never reach the upstream). */
export const GATEWAY_WRITTEN: readonly string[] = ['x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'x-request-id'];
/** Request headers the gateway drops from every request and sends none of (docs/security.md). */
export const CLIENT_DROPPED: readonly string[] = ['forwarded', 'x-forwarded-client-cert'];

/**
 * Forwarding headers the gateway does not write, which apps read for the links they build (Rack: -Port, -Scheme,
 * -Ssl before X-Forwarded-Proto; Spring: -Port, -Prefix): a client's copy would pick those links, as X-Forwarded-Host
 * would (audit A15), so it is dropped; one a `headers.request` rule wrote (`set x-forwarded-prefix: /api` on a
 * route that strips `/api`) is sent (`req.locals.forwarding`, set by the headers stage).
 */
export const CLIENT_FORWARDING: ReadonlySet<string> = new Set(['x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-scheme', 'x-forwarded-ssl', 'x-forwarded-server']);

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) never cross the gateway in either
 * direction, nor does any header a `Connection` header names.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

/** Any byte outside ASCII: such header values and paths need byte-exact handling. */
export const NON_ASCII = /[^\x00-\x7f]/;

/**
 * `!NON_ASCII.test(text)`, by a loop for a short text (a path, a query):
 * the regular expression call costs more before it scans than the loop
 * does in all (counted under callgrind: the query's check in forward
 * 517 instructions fewer per bare request, docs/performance-instructions.md).
 */
export function isAscii(text: string): boolean {
  const n = text.length;
  if (n > 32) return !NON_ASCII.test(text);
  for (let i = 0; i < n; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * uWS hands the request line over decoded as UTF-8, and undici writes the
 * target as latin1: re-encoded so the bytes sent upstream are the ones received.
 */
export function latin1Bytes(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** Lower-case names listed in a `Connection` header value, or null when none. */
export function connectionTokens(value: string | undefined): Set<string> | null {
  if (value === undefined || value === '') return null;
  const set = new Set<string>();
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') set.add(t);
  }
  return set.size === 0 ? null : set;
}

/** Looks a header up in a flat response header list; the first value wins. */
export function getHeader(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) return headers[i + 1];
  }
  return undefined;
}

/** A copy of a flat header list with `name` removed and, unless undefined, set to `value`. */
export function setHeader(headers: readonly string[], name: string, value: string | undefined): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== name) out.push(headers[i]!, headers[i + 1]!);
  }
  if (value !== undefined) out.push(name, value);
  return out;
}

/**
 * The scheme the client used: `req.protocol`, or the `X-Forwarded-Proto`
 * (`http` or `https`) of a peer in `trustedProxies` (a TLS-terminating load
 * balancer, `req.viaTrustedProxy`). What the upstream is told and what the
 * cache keys by, so an `http` answer (a redirect to https) is never served
 * to an `https` client.
 */
export function clientScheme(req: { readonly protocol: string; readonly viaTrustedProxy?: boolean; readonly headers: Readonly<Record<string, string | undefined>> }): string {
  if (req.viaTrustedProxy !== true) return req.protocol;
  const p = req.headers['x-forwarded-proto'];
  return p === 'https' || p === 'http' ? p : req.protocol;
}
