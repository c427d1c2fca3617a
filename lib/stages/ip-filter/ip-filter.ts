import { Observable } from 'rxjs';
import { IpForbiddenError } from '../../errors.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';
import { CidrList, parseAddress } from './cidr.ts';
import { ClientAddressResolver } from './client-address.ts';

export interface IpFilterOptions {
  /**
   * Addresses or CIDRs allowed in (`10.0.0.0/8`, `2001:db8::/32`,
   * `192.0.2.7`). When non-empty, every other address gets `403
   * IP_FORBIDDEN`. @default [] (everyone)
   */
  allow?: readonly string[];
  /** Addresses or CIDRs refused, even when `allow` lists them too (deny wins). @default [] */
  deny?: readonly string[];
  /**
   * Peers whose `X-Forwarded-For` is believed (load balancers, CDNs in
   * front of the gateway); see `ClientAddressResolver`. With none, the
   * socket's address is the client's. @default []
   */
  trustedProxies?: readonly string[];
  /**
   * What the `403` goes through on its way out: the route's `cors`, when
   * it runs after this stage, so a page reads the 403 instead of a CORS
   * failure (and a preflight from a refused address is answered as any
   * other). null: the error as it is. @default null
   */
  refusal?: Policy | null;
}

const defaults = { allow: [], deny: [], trustedProxies: [], refusal: null } satisfies Required<IpFilterOptions>;

function forbidden(): Observable<GatewayResponse> {
  return new Observable<GatewayResponse>((s) => s.error(new IpForbiddenError('your address is not allowed here')));
}

/**
 * Admits a request by its client's address: `403 IP_FORBIDDEN` when `deny`
 * holds it or a non-empty `allow` does not. It also sets
 * `req.clientAddress` (the address behind `trustedProxies`) for the stages
 * after it: rate limits keyed by `ip`, the `hash` balancer; and
 * `req.viaTrustedProxy` when the peer is one of `trustedProxies`, whose
 * `X-Forwarded-Proto` then reaches the upstream (and keys the cache). The lists are
 * compiled once; a check is a loop over typed arrays, and the verdict for
 * the last address is kept (a client sends request after request).
 */
export function ipFilter(options: IpFilterOptions = {}): Policy {
  const { allow, deny, trustedProxies, refusal } = { ...defaults, ...options };
  if (allow.length === 0 && deny.length === 0 && trustedProxies.length === 0) return (next) => next;
  const allowed = new CidrList(allow, 'ipFilter.allow');
  const denied = new CidrList(deny, 'ipFilter.deny');
  const resolver = new ClientAddressResolver(new CidrList(trustedProxies, 'trustedProxies'));
  const filters = allowed.size > 0 || denied.size > 0;
  const words = new Uint32Array(4);
  let lastAddress = '';
  let lastVerdict = true;
  const refuse: Handler = refusal === null ? forbidden : refusal(forbidden);

  function admits(address: string): boolean {
    if (address === lastAddress) return lastVerdict;
    const kind = parseAddress(address, words);
    const ok = !denied.hasParsed(kind, words) && (allowed.size === 0 || allowed.hasParsed(kind, words));
    lastAddress = address;
    lastVerdict = ok;
    return ok;
  }

  return (next) => function ipFilterHandler(req: GatewayRequest) {
    const address = resolver.resolve(req.remoteAddress, req.headers['x-forwarded-for']);
    req.clientAddress = address;
    // Only then: an untrusted request keeps its shape (one field fewer to add).
    if (resolver.peerTrusted) req.viaTrustedProxy = true;
    if (!filters || admits(address)) return next(req);
    return refuse(req);
  };
}
