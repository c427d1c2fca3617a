import { createRequire } from 'node:module';
import { BadRequestError } from '../errors.ts';
import { CLIENT_DROPPED, CLIENT_FORWARDING, clientScheme, connectionTokens, GATEWAY_WRITTEN, HOP_BY_HOP, isAscii, latin1Bytes } from '../headers.ts';
import type { GatewayRequest } from '../types.ts';
import type { Upstream } from './upstream.ts';

/**
 * Request headers the gateway sets itself, or that only a proxy may set; the client's copies are dropped.
 * `x-forwarded-client-cert` (Envoy's XFCC) says which client certificate a proxy verified: the edge verifies
 * none (uWS cannot require one, docs/tls.md), so a client's own would pass for one. Envoy's default
 * (`forward_client_cert_details: SANITIZE`) drops it the same way.
 */
const REPLACED = ['host', 'expect', 'x-forwarded-for', ...GATEWAY_WRITTEN, ...CLIENT_DROPPED];
/**
 * Request headers whose syntax allows only ASCII and that most requests carry: copied without the scan for
 * characters outside ASCII below (a bearer token is ~200 characters: ~1,000 instructions a request to scan).
 * A non-ASCII character in one of them reaches undici as before (latin1 up to U+00FF, else its 400).
 */
const ASCII_SYNTAX = ['authorization', 'accept', 'accept-encoding', 'accept-language', 'user-agent', 'content-type', 'content-length', 'cache-control', 'pragma', 'origin',
  'traceparent', 'tracestate']; // traceparent: hex as the gateway checked or made it (trace-context.ts); tracestate: printable ASCII (W3C)
const DROP = 1;
const ASCII = 2;
const FORWARDING = 3;
/** Hop-by-hop and replaced headers (never copied), `CLIENT_FORWARDING` and `ASCII_SYNTAX`, in one map: one lookup per header. */
const KIND: ReadonlyMap<string, number> = new Map([...ASCII_SYNTAX.map((n) => [n, ASCII] as const), ...[...CLIENT_FORWARDING].map((n) => [n, FORWARDING] as const),
  ...[...HOP_BY_HOP, ...REPLACED].map((n) => [n, DROP] as const)]);

/** The request headers the gateway adds to every proxied request (tracing's `traceparent` too). */
export const GATEWAY_SET = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'x-request-id', 'traceparent'] as const;

let warnedUndiciNames = false;

/**
 * Registers `names` (lower case, valid tokens) in undici's table of
 * well-known header names (lib/core/constants.js `headerNameLowerCasedRecord`,
 * a null-prototype object mapping a name to its lower case, internal to
 * undici), so its `processHeader` finds them there instead of lower-casing
 * and token-checking each one per request: undici's `processHeader` with
 * what it calls ~13,800 → ~9,300 instructions per bare request for the six
 * gateway-set names (docs/performance-instructions.md, eighth round). The same lower-case name results either way, so the bytes
 * sent do not change. When the table is missing or shaped otherwise (another
 * undici), nothing is registered and one warning (once per process, code
 * `RXGATE_UNDICI_NAMES`) says so; the unit test upstream-undici-names fails
 * then, so an upgrade cannot lose it silently.
 * Returns whether the names are registered.
 */
export function registerWithUndici(names: readonly string[], resolveFrom: string = import.meta.url): boolean {
  let record: unknown;
  try {
    const req = createRequire(createRequire(resolveFrom).resolve('undici'));
    record = (req('./lib/core/constants.js') as { headerNameLowerCasedRecord?: unknown }).headerNameLowerCasedRecord;
  } catch {
    record = undefined;
  }
  const table = record as Record<string, string | undefined> | null | undefined;
  // The shape processHeader relies on: no prototype, a well-known name maps to its lower case.
  if (typeof table !== 'object' || table === null || Object.getPrototypeOf(table) !== null
      || table['Content-Type'] !== 'content-type' || table['content-type'] !== 'content-type') {
    if (!warnedUndiciNames) process.emitWarning('undici\'s header-name table was not found: gateway-set request headers are checked per request', { code: 'RXGATE_UNDICI_NAMES' });
    warnedUndiciNames = true;
    return false;
  }
  for (const name of names) if (table[name] === undefined) table[name] = name;
  return true;
}

/** Whether undici knows the gateway-set names (registered when this module loads). */
export const UNDICI_KNOWS_GATEWAY_NAMES = registerWithUndici(GATEWAY_SET);

/**
 * The headers sent upstream, as undici's flat `[name, value, …]` list: the
 * client's, less hop-by-hop ones (and those `Connection` names), with
 * `Host` as `preserveHost` says and the `X-Forwarded-*` family, `X-Real-IP`
 * and `X-Request-Id` set by the gateway (`X-Forwarded-Proto` as a trusted
 * proxy sent it, `req.viaTrustedProxy`); a client's `Forwarded` and
 * `X-Forwarded-Client-Cert` are dropped.
 *
 * `ownHostImplied`: the caller's client sends the instance's own host when
 * the list has none (undici writes its pool's precomputed `host:` line, the
 * same bytes as `upstream.host`), so with `preserveHost: false` it is left
 * out: one header fewer for undici to check and concatenate per request.
 */
export function upstreamHeaders(req: GatewayRequest, upstream: Upstream, preserveHost: boolean | string, ownHostImplied = false): string[] {
  const headers = req.headers;
  const named = connectionTokens(headers.connection);
  const out: string[] = [];
  for (const name in headers) {
    const kind = KIND.get(name);
    if (kind === DROP || (named !== null && named.has(name))) continue;
    if (kind === FORWARDING && req.locals.forwarding?.has(name) !== true) continue;
    const value = headers[name]!;
    out.push(name, kind === ASCII || isAscii(value) ? value : utf8Bytes(name, value));
  }
  const clientHost = headers.host ?? '';
  const ip = req.remoteAddress;
  // A client's X-Forwarded-For that its Connection names is hop-by-hop (RFC 9110 §7.6.1): not the list the peer is appended to.
  const xff = named !== null && named.has('x-forwarded-for') ? undefined : headers['x-forwarded-for'];
  const host = preserveHost === false ? upstream.host : preserveHost === true ? clientHost || upstream.host : preserveHost;
  if (host !== upstream.host || !ownHostImplied) out.push('host', host);
  out.push(
    'x-forwarded-for', xff === undefined ? ip : `${xff}, ${ip}`,
    // A trusted proxy's X-Forwarded-Proto is kept (how the client came in). Its X-Forwarded-Host
    // and Forwarded are not: load balancers (AWS ALB, nginx without proxy_set_header) pass the
    // client's own through, which would forge the host links and reset mails are built on.
    'x-forwarded-proto', clientScheme(req),
    'x-forwarded-host', clientHost,
    // The client as trusted proxies report it (ipFilter's trustedProxies), else the peer.
    'x-real-ip', req.clientAddress ?? ip,
    'x-request-id', req.id,
  );
  return out;
}

/**
 * A header value with characters outside ASCII as its UTF-8 bytes, one latin1 character each: uWS hands values
 * over decoded as UTF-8 and undici (as Node's http, for ws) writes header strings as latin1, so `café` (63 61 66
 * C3 A9) reached the upstream as `caf E9`, and `☕` was refused. nginx passes the bytes as received. Bytes that were
 * not UTF-8 arrive as U+FFFD and cannot be: a 400 naming the header, as for the path (edge.ts).
 */
function utf8Bytes(name: string, value: string): string {
  if (value.includes('\uFFFD')) throw new BadRequestError(`request header ${name} is not valid UTF-8`, { sent: false });
  return latin1Bytes(value);
}
