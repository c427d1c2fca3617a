import type { Subscriber } from 'rxjs';
import { CLIENT_DROPPED, CLIENT_FORWARDING, GATEWAY_WRITTEN, HOP_BY_HOP } from '../../headers.ts';
import { HoldingSubscriber, stageHandler, subscribeNext } from '../../subscriber.ts';
import { EDGE_REQUEST_ID, EDGE_RESPONSE_TIME, type GatewayRequest, type GatewayResponse, type Handler, type Policy, type ResponseHeaders } from '../../types.ts';
import type { HeaderRules, HeadersOptions } from './schema.ts';

/**
 * Headers a rule may not name. On the request: the framing and hop-by-hop
 * headers the gateway and undici write themselves, and `host` (the route's
 * `preserveHost` decides it). On the response: framing, hop-by-hop and
 * `content-encoding`, which must describe the body as sent.
 */
const REQUEST_REFUSED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'host', 'content-length', 'expect']);
const RESPONSE_REFUSED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length', 'content-encoding']);
/**
 * Request headers a `set` or `add` would write in vain: the gateway drops the
 * client's copy and sends its own after the rules (upstream-headers.ts), or
 * none. Refused so a config cannot look as if it sent them (audit A15; until
 * session 13 such a rule was accepted and never reached the upstream).
 * `remove` stays allowed: the upstream gets no client copy of them either way.
 * `x-forwarded-for` is not here: a rule on it changes the client's list the
 * gateway appends the peer to.
 */
const REQUEST_WRITTEN: ReadonlyMap<string, string> = new Map([
  ...GATEWAY_WRITTEN.map((n) => [n, 'the gateway writes its own after the rules'] as const),
  ...CLIENT_DROPPED.map((n) => [n, 'the gateway drops it from every request (docs/security.md)'] as const),
]);

/** Rules with lower-case names, checked against the names the side refuses. */
interface Compiled {
  remove: string[];
  set: Array<[string, string]>;
  add: Array<[string, string]>;
  /** The `CLIENT_FORWARDING` names the rules write, sent upstream though a client's own are not (null: none). */
  forwarding: ReadonlySet<string> | null;
  /** The names `set` and `add` write: a client's `Connection` cannot make them hop-by-hop (null: none). */
  written: ReadonlySet<string> | null;
}

function compile(rules: HeaderRules | undefined, refused: ReadonlySet<string>, side: string): Compiled | null {
  if (rules === undefined) return null;
  const lower = (entries: Record<string, string> | undefined): Array<[string, string]> => Object.entries(entries ?? {}).map(([n, v]) => [n.toLowerCase(), v]);
  const out: Compiled = { remove: (rules.remove ?? []).map((n) => n.toLowerCase()), set: lower(rules.set), add: lower(rules.add), forwarding: null, written: null };
  const written = [...out.set, ...out.add].map(([n]) => n);
  if (side === 'request' && written.length > 0) out.written = new Set(written);
  const forwarding = written.filter((n) => CLIENT_FORWARDING.has(n));
  if (side === 'request' && forwarding.length > 0) out.forwarding = new Set(forwarding);
  for (const [kind, names] of [['remove', out.remove], ['set', out.set.map(([n]) => n)], ['add', out.add.map(([n]) => n)]] as const) {
    const twice = names.find((n, i) => names.indexOf(n) !== i);
    if (twice !== undefined) throw new TypeError(`headers.${side}.${kind}: ${twice} is named twice (names compare without case)`);
    for (const n of names) {
      if (refused.has(n)) throw new TypeError(`headers.${side}.${kind}: ${n} is written by the gateway (framing, hop-by-hop${side === 'request' ? ' or Host: see preserveHost' : ' or the body\'s coding'}); a rule cannot change it`);
      const why = side === 'request' && kind !== 'remove' ? REQUEST_WRITTEN.get(n) : undefined;
      if (why !== undefined) throw new TypeError(`headers.request.${kind}: ${n} would never reach the upstream: ${why}`);
    }
  }
  if (out.remove.length + out.set.length + out.add.length === 0) return null;
  return out;
}

/** The request's headers with the rules applied, in place (the request is this one client's). */
function applyToRequest(req: GatewayRequest, rules: Compiled): void {
  const h = req.headers;
  for (const n of rules.remove) delete h[n];
  if (rules.forwarding !== null) {
    // The client's copy is never sent (upstream-headers.ts): an `add` starts from nothing, as a `set` does.
    for (const n of rules.forwarding) delete h[n];
    req.locals.forwarding = rules.forwarding;
  }
  const c = h.connection;
  // A client's Connection naming a header a rule writes would drop the rule's value before forwarding (RFC 9110
  // §7.6.1 is about the client's own copy): those names leave the list. nginx's proxy_set_header values are sent.
  if (rules.written !== null && c !== undefined && c !== 'keep-alive' && c !== 'close' && c !== 'Keep-Alive') {
    const written = rules.written;
    h.connection = c.split(',').filter((t) => !written.has(t.trim().toLowerCase())).join(',');
  }
  for (const [n, v] of rules.set) h[n] = v;
  for (const [n, v] of rules.add) {
    const old = h[n];
    // Cookie pairs are joined with "; " (RFC 6265 §5.4); other fields with ", " (RFC 9110 §5.3).
    h[n] = old === undefined || old === '' ? v : old + (n === 'cookie' ? '; ' : ', ') + v;
  }
}

/**
 * The edge's headers (written after the rules) a response rule removes: the edge leaves them out of the answers that
 * come back through it (`GatewayResponse.omit`), as Envoy's `response_headers_to_remove` and nginx's
 * `proxy_hide_header` do. 0: none, and the responses carry no `omit` (their shape as on every other route).
 */
function edgeOmitted(rules: Compiled | null): number {
  const removed = rules?.remove ?? [];
  return (removed.includes('x-request-id') ? EDGE_REQUEST_ID : 0) | (removed.includes('x-gateway-response-time') ? EDGE_RESPONSE_TIME : 0);
}

/** A new header list with the rules applied: the response's own may be a cache entry's, shared by every hit. */
function applyToResponse(res: GatewayResponse, rules: Compiled, drop: ReadonlySet<string>, omit: number): GatewayResponse {
  const h = res.headers;
  const out: ResponseHeaders = [];
  for (let i = 0; i < h.length; i += 2) {
    if (!drop.has(h[i]!)) out.push(h[i]!, h[i + 1]!);
  }
  for (const [n, v] of rules.set) out.push(n, v);
  for (const [n, v] of rules.add) out.push(n, v);
  return omit === 0 ? { ...res, headers: out } : { ...res, headers: out, omit: (res.omit ?? 0) | omit };
}

/**
 * Passes the response on with the rules applied: one object per request,
 * where `pipe(map(...))` cost a lifted Observable, an operator subscriber
 * and its closures. Like `map`, a throw goes downstream as the error. No
 * InnerSubscriber: one more class through its methods would make them
 * megamorphic on a route with the policies' four (HoldingSubscriber;
 * docs/performance-policies.md, tenth round).
 */
class RulesSubscriber extends HoldingSubscriber<GatewayResponse> {
  constructor(
    private readonly downstream: Subscriber<GatewayResponse>, private readonly rules: Compiled, private readonly drop: ReadonlySet<string>, private readonly omit: number,
  ) {
    super(downstream);
  }

  protected onError(err: unknown): void {
    this.downstream.error(err);
  }

  protected onComplete(): void {
    this.downstream.complete();
  }

  protected onNext(res: GatewayResponse): void {
    let out: GatewayResponse;
    try {
      out = applyToResponse(res, this.rules, this.drop, this.omit);
    } catch (err) {
      this.error(err);
      return;
    }
    this.downstream.next(out);
  }
}

/**
 * `headers`: sets, adds and removes headers on the request the upstream
 * gets and on the response the client gets (nginx's `proxy_set_header` and
 * `add_header`, Envoy's `request_headers_to_add`/`_remove`, Traefik's
 * headers middleware, Kong's request- and response-transformer). Remove,
 * then set, then add. Response rules apply to what comes back through the
 * stage (the upstream's answers and cache hits), not to the gateway's own
 * error answers; removing `x-request-id` or `x-gateway-response-time`
 * keeps the edge from writing it on them.
 */
export function headerRules(options: HeadersOptions): Policy | null {
  const request = compile(options.request, REQUEST_REFUSED, 'request');
  const response = compile(options.response, RESPONSE_REFUSED, 'response');
  if (request === null && response === null) return null;
  const drop = new Set(response === null ? [] : [...response.remove, ...response.set.map(([n]) => n)]);
  const omit = edgeOmitted(response);
  // Once per request: a retry or hedge after this stage (a `pipeline` list may put one there) subscribes again with a
  // copy of the request per attempt, which shares the first one's `headers` and `locals`: keyed by `locals`.
  const applied = new WeakSet<object>();
  /** Per request, when subscribed: no Observable of its own, and without response rules nothing on the way back. */
  function withHeaderRules(next: Handler, req: GatewayRequest, subscriber: Subscriber<GatewayResponse>): void {
    if (request !== null && !applied.has(req.locals)) {
      applied.add(req.locals);
      applyToRequest(req, request);
    }
    subscribeNext(next, req, response === null ? subscriber : new RulesSubscriber(subscriber, response, drop, omit));
  }
  return (next) => stageHandler('withHeaderRules', withHeaderRules, next);
}
