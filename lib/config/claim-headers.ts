import type { Startable } from '../subscriber.ts';
import type { GatewayRequest, Handler } from '../types.ts';
import type { GatewayConfig } from './schema.ts';

/**
 * Every header a `forwardClaims` anywhere in `config` writes (the top-level
 * auth's, each route's), lower-cased: an upstream behind several routes
 * trusts them whichever route a request took.
 */
export function claimHeaders(config: GatewayConfig): string[] {
  const names = new Set<string>();
  for (const auth of [config.auth, ...config.routes.map((r) => r['auth'])]) {
    const map = isObject(auth) ? auth['forwardClaims'] : undefined;
    if (isObject(map)) for (const header of Object.values(map)) if (typeof header === 'string') names.add(header.toLowerCase());
  }
  return [...names];
}

/**
 * Deletes the claim headers from every request of a route before its
 * handler (routing by match, the whole pipeline) sees it, so a public
 * route, a custom `pipeline` without auth, or a route forwarding other
 * claims never passes on a client's copy; the route's auth stage then
 * writes its own from a verified token. Only when some forwardClaims is
 * configured (no cost otherwise); keeps the handler's `start`.
 */
export function withoutClaimHeaders(names: readonly string[], handler: Handler): Handler {
  const strip = claimStripper(names);
  const stripped: Handler & Partial<Startable> = function stripClaimHeaders(req) {
    strip(req);
    return handler(req);
  };
  const start = (handler as Partial<Startable>).start;
  if (start !== undefined) stripped.start = (req, observer) => {
    strip(req);
    return start(req, observer);
  };
  return stripped;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What deletes the client's copies of `names` from a request (also before a route's `match` is tested: see build-routes.ts). */
export function claimStripper(names: readonly string[]): (req: GatewayRequest) => void {
  return (req) => {
    // Looked up first: a `delete` of a header the request lacks (the usual case) still costs a runtime call.
    const headers = req.headers;
    for (let i = 0; i < names.length; i++) if (headers[names[i]!] !== undefined) delete headers[names[i]!];
  };
}
