import { Observable, type Subscriber } from 'rxjs';
import { parseDuration, type Duration } from '../../duration.ts';
import { ForbiddenError, toGatewayError } from '../../errors.ts';
import { InnerSubscriber } from '../../subscriber.ts';
import type { GatewayRequest, GatewayResponse, Policy } from '../../types.ts';
import { originMatcher, type OriginPattern } from './origins.ts';
import { addVary } from './vary.ts';

export interface CorsOptions {
  /**
   * Origins whose pages may call this route: `*`, exact
   * (`https://app.example.com`), a wildcard subdomain
   * (`https://*.example.com`: one or more labels, not the apex itself) or
   * `{ regex }` (matched whole, case-insensitive). @default ['*']
   */
  origins?: readonly OriginPattern[];
  /** Methods a preflight allows; `*` for any. @default ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'] */
  methods?: readonly string[];
  /**
   * Request headers a preflight allows; `*` for any: reflected when
   * `credentials` (browsers take `*` literally then), else sent as
   * `*, authorization` (the Fetch standard's `*` leaves out Authorization).
   * @default ['*']
   */
  allowHeaders?: readonly string[];
  /**
   * Response headers the page may read beyond the safelisted ones; `*` for
   * all: with `credentials` (where browsers take `*` literally) it becomes
   * the names of the response's headers. @default []
   */
  exposeHeaders?: readonly string[];
  /** Allow cookies and HTTP auth (`Access-Control-Allow-Credentials: true`); needs a list of origins. @default false */
  credentials?: boolean;
  /** How long a browser may keep a preflight's answer; null sends none (browsers then use 5 s). @default null */
  maxAge?: Duration | null;
}

const defaults = {
  origins: ['*'],
  methods: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'],
  allowHeaders: ['*'],
  exposeHeaders: [],
  credentials: false,
  maxAge: null,
} satisfies Required<CorsOptions>;

/** The upstream's CORS headers: the gateway's policy replaces them. */
const CORS_HEADERS = new Set([
  'access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers',
  'access-control-allow-methods', 'access-control-allow-headers', 'access-control-max-age',
]);

/**
 * CORS for a route. A preflight (`OPTIONS` with `Origin` and
 * `Access-Control-Request-Method`) is answered here, never forwarded: 204
 * with the allow headers, or `403 FORBIDDEN` for an origin not admitted
 * (Spring's choice; the browser fails the call either way, and the status
 * says why in its console). Other requests go on; on the way out their
 * response (and an error answer) gets `Access-Control-Allow-Origin` and
 * friends when the origin is admitted, none when it is not, and `Vary:
 * Origin` whenever the answer depends on the origin — so a cache never
 * serves one origin's headers to another. The upstream's own
 * `Access-Control-*` headers are dropped.
 */
export function cors(options: CorsOptions = {}): Policy {
  const o = { ...defaults, ...options };
  const origins = originMatcher(o.origins);
  if (o.credentials && origins.any) throw new TypeError('cors: credentials: true needs a list of origins (with *, every site could act as the user)');
  const maxAge = o.maxAge === null ? null : String(Math.floor(parseDuration(o.maxAge, 'cors.maxAge') / 1000));
  const anyMethod = o.methods.includes('*');
  const anyHeader = o.allowHeaders.includes('*');
  const methods = anyMethod && !o.credentials ? '*' : o.methods.join(', ');
  // A `*` in Access-Control-Allow-Headers never covers Authorization (Fetch, "CORS non-wildcard request-header name").
  const allowHeaders = anyHeader && !o.allowHeaders.some((n) => n.toLowerCase() === 'authorization')
    ? [...o.allowHeaders, 'authorization'].join(', ') : o.allowHeaders.join(', ');
  // `*` as an origin without credentials: the same headers for everyone, no Vary.
  const fixed = origins.any;
  // With credentials a browser reads `*` as a header named "*": name the response's headers instead.
  const exposeAll = o.credentials && o.exposeHeaders.includes('*');
  const common: string[] = [];
  if (o.credentials) common.push('access-control-allow-credentials', 'true');
  if (o.exposeHeaders.length > 0 && !exposeAll) common.push('access-control-expose-headers', o.exposeHeaders.join(', '));
  const exposeAlso = o.exposeHeaders.filter((n) => n !== '*');
  const forAny = ['access-control-allow-origin', '*', ...common];

  function preflight(req: GatewayRequest, origin: string): Observable<GatewayResponse> {
    req.body?.destroy();
    if (!origins.matches(origin)) {
      return new Observable((s) => s.error(new ForbiddenError(`origin ${origin} is not allowed by this route's CORS policy`, { headers: { vary: 'Origin' } })));
    }
    const headers = fixed ? [...forAny] : ['access-control-allow-origin', origin, ...common];
    const requestedHeaders = req.headers['access-control-request-headers'];
    if (anyMethod && o.credentials) headers.push('access-control-allow-methods', req.headers['access-control-request-method']!);
    else if (methods !== '') headers.push('access-control-allow-methods', methods);
    if (anyHeader && o.credentials) {
      if (requestedHeaders !== undefined && requestedHeaders !== '') headers.push('access-control-allow-headers', requestedHeaders);
      addVary(headers, 'Access-Control-Request-Headers');
    } else if (allowHeaders !== '') headers.push('access-control-allow-headers', allowHeaders);
    if (maxAge !== null) headers.push('access-control-max-age', maxAge);
    if (!fixed) addVary(headers, 'Origin');
    const response: GatewayResponse = { status: 204, headers, body: null };
    return new Observable((s) => {
      s.next(response);
      s.complete();
    });
  }

  return (next) => function corsHandler(req: GatewayRequest) {
    const origin = req.headers.origin;
    if (origin !== undefined && req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) return preflight(req, origin);
    const extra = fixed ? forAny : origin !== undefined && origins.matches(origin) ? ['access-control-allow-origin', origin, ...common] : null;
    const expose = exposeAll && extra !== null ? exposeAlso : null;
    return new Observable<GatewayResponse>((s) => next(req).subscribe(new CorsSubscriber(s, extra, !fixed, expose)));
  };
}

class CorsSubscriber extends InnerSubscriber<GatewayResponse> {
  /**
   * @param expose with `exposeHeaders: ['*']` and credentials, the names
   * listed besides `*`: the answer's own header names are exposed with them.
   */
  constructor(
    downstream: Subscriber<GatewayResponse>,
    private readonly extra: readonly string[] | null,
    private readonly vary: boolean,
    private readonly expose: readonly string[] | null,
  ) {
    super(downstream);
  }

  protected onNext(res: GatewayResponse): void {
    const headers: string[] = [];
    const src = res.headers;
    for (let i = 0; i < src.length; i += 2) {
      if (!CORS_HEADERS.has(src[i]!)) headers.push(src[i]!, src[i + 1]!);
    }
    if (this.expose !== null) pushExposed(headers, headers.filter((_, i) => i % 2 === 0), this.expose);
    if (this.extra !== null) headers.push(...this.extra);
    if (this.vary) addVary(headers, 'Origin');
    this.downstream.next({ ...res, headers });
  }

  /** An error answer (401, 429, 502…) carries the CORS headers too, so the page can read its status. */
  protected override onError(err: unknown): void {
    if (this.extra === null && !this.vary) {
      this.downstream.error(err);
      return;
    }
    const e = toGatewayError(err);
    const headers: Record<string, string> = { ...e.headers };
    const extra = this.extra ?? [];
    if (this.expose !== null) {
      const named: string[] = [];
      pushExposed(named, Object.keys(headers), this.expose);
      if (named.length > 0) headers[named[0]!] = named[1]!;
    }
    for (let i = 0; i < extra.length; i += 2) headers[extra[i]!] = extra[i + 1]!;
    if (this.vary) headers.vary = headers.vary === undefined ? 'Origin' : `${headers.vary}, Origin`;
    // The same error (status, code, cause, brand) with more headers: errors are answers, built once.
    this.downstream.error(Object.create(e, { headers: { value: headers, enumerable: true } }));
  }
}

/** Adds `access-control-expose-headers` naming `names` (unique, lower case) and `also`, when there is any. */
function pushExposed(headers: string[], names: readonly string[], also: readonly string[]): void {
  const all = new Set<string>();
  for (const n of names) if (!CORS_HEADERS.has(n.toLowerCase())) all.add(n.toLowerCase());
  for (const n of also) all.add(n.toLowerCase());
  if (all.size > 0) headers.push('access-control-expose-headers', [...all].join(', '));
}
