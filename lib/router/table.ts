import { throwError, type Observable, type Observer, type Unsubscribable } from 'rxjs';
import { BadRequestError, MethodNotAllowedError } from '../errors.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../types.ts';
import { Router, type RouteRewrite } from './router.ts';
import type { Startable } from '../subscriber.ts';

/** A route in code form: where it matches and the pipeline it runs. */
export interface GatewayRoute {
  /** Name used in metrics and logs. @default the path */
  name?: string;
  /** `/exact`, `/users/:id`, or a prefix `/api/*`. */
  path: string;
  methods?: readonly string[];
  rewrite?: RouteRewrite;
  /**
   * A path with an encoded slash or backslash (`%2F`, `%5C`, raw `\`):
   * `reject` answers 400 BAD_REQUEST; `keep` forwards it as received.
   * @default 'reject'
   */
  encodedSlashes?: 'reject' | 'keep';
  /** The route's pipeline, e.g. `compose(jwtAuth(…), retry())(forward(users))`. */
  handler: Handler;
  /**
   * Put around the 405 the router answers to a method no route on this path
   * allows: the route's `cors(…)`, so a page can read the refusal. The most
   * specific route on the path that has one applies.
   */
  refusal?: Policy;
  /**
   * Host names this route serves (`api.example.com`, `*.example.com`); none:
   * any host, after the routes that name the request's (lib/router/hosts.ts).
   */
  hosts?: readonly string[];
  /**
   * The route serves only requests that pass this (its `match`); the others
   * go on to the next route on the path, as if this one were not there.
   */
  when?: (req: GatewayRequest) => boolean;
}

interface Entry {
  name: string;
  handler: Handler;
  keepEncodedSlashes: boolean;
  refusal: Policy | null;
  when: ((req: GatewayRequest) => boolean) | null;
}

/**
 * The routes a gateway serves, built once and never changed: a new config
 * builds a new table, and the gateway swaps it in whole (requests in flight
 * keep the pipeline they started with).
 */
export class RouteTable {
  private readonly router = new Router<Entry>();
  /** Some route has a `when`: only then does matching ask each candidate (nothing more per request otherwise). */
  private readonly conditional: boolean;

  constructor(routes: readonly GatewayRoute[]) {
    this.conditional = routes.some((r) => r.when !== undefined);
    for (const route of routes) {
      this.router.add({
        path: route.path,
        value: { name: route.name ?? route.path, handler: route.handler, keepEncodedSlashes: route.encodedSlashes === 'keep', refusal: route.refusal ?? null, when: route.when ?? null },
        ...(route.methods !== undefined ? { methods: route.methods } : {}),
        ...(route.rewrite !== undefined ? { rewrite: route.rewrite } : {}),
      });
    }
  }

  get size(): number {
    return this.router.size;
  }

  /** Whether some route here matches `path` (normalised) and, if it has a `match`, `req`; whatever its methods. */
  serves(path: string, req: GatewayRequest): boolean {
    return this.router.find(path, this.conditional ? passes : servesAny, req) !== null;
  }

  /** Routes one request and runs its route's pipeline. */
  dispatch(req: GatewayRequest): Observable<GatewayResponse> {
    const handler = this.route(req);
    if (typeof handler !== 'function') return handler;
    const out = handler(req);
    // Off the hot path (the edge calls `start`): one property read.
    return typeof out?.subscribe === 'function' ? out : throwError(() => notObservable(out, undefined));
  }

  /**
   * `dispatch(req).subscribe(observer)`, without the route's Observable when
   * its handler can start directly (a pipeline that is `forward` alone, see
   * `StartableHandler`). Returns what stops the request; null when over.
   */
  start(req: GatewayRequest, observer: Observer<GatewayResponse>): Unsubscribable | null {
    const handler = this.route(req);
    if (typeof handler !== 'function') return handler.subscribe(observer);
    const start = (handler as Partial<Startable>).start;
    if (start !== undefined) return start(req, observer);
    const out = handler(req);
    try {
      return out.subscribe(observer);
    } catch (err) {
      // Free unless thrown: the edge answers the throw 500 (connection.ts run).
      throw notObservable(out, err);
    }
  }

  /** The matched route's handler, with the request updated for it; or the refusal to answer with. */
  private route(req: GatewayRequest): Handler | Observable<never> {
    let match;
    try {
      match = this.conditional ? this.router.match(req.method, req.normalizedPath, passes, req) : this.router.match(req.method, req.normalizedPath);
    } catch (err) {
      return err instanceof MethodNotAllowedError ? this.refused(req, err) : throwError(() => err);
    }
    const route = match.route;
    if (req.encodedSlash === true && !route.value.keepEncodedSlashes) {
      return throwError(() => new BadRequestError('encoded slash or backslash in the path (the route does not set encodedSlashes: keep)'));
    }
    req.params = match.params;
    req.locals.route = route.value.name;
    if (route.rewrite !== null) {
      const path = route.rewrite(req.path, req.normalizedPath);
      if (path === null) return throwError(() => new BadRequestError('the route\'s rewrite made a dot-segment (..) of the path'));
      req.path = path;
    }
    return route.value.handler;
  }

  /**
   * `err`, a refusal the edge made before routing (429 over
   * `maxRequestsPerClient`, 414, 431: `EdgeLimits.refused`), through the
   * refusal policy (cors) of the route the request would reach, or for a
   * method no route there allows, of the route a 405 would take; none when
   * no route serves the path. A preflight gets the refusal as it is: a
   * browser fails a preflight answered with anything but 2xx whatever its
   * headers, and the route's cors would answer it 204 in the refusal's place.
   */
  refuse(req: GatewayRequest, err: unknown): Observable<never> {
    const fail = (): Observable<never> => throwError(() => err);
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) return fail();
    let entry: Entry | null;
    try {
      entry = (this.conditional ? this.router.match(req.method, req.normalizedPath, passes, req) : this.router.match(req.method, req.normalizedPath)).route.value;
    } catch (e) {
      entry = e instanceof MethodNotAllowedError ? this.router.find(req.normalizedPath, hasRefusal)?.value ?? null : null;
    }
    return entry === null || entry.refusal === null ? fail() : entry.refusal(fail)(req) as Observable<never>;
  }

  /** A 405, through the refusal policy of the most specific route on the path that has one. */
  private refused(req: GatewayRequest, err: MethodNotAllowedError): Handler | Observable<never> {
    const fail = (): Observable<never> => throwError(() => err);
    const route = this.router.find(req.normalizedPath, hasRefusal);
    return route === null ? fail() : route.value.refusal!(fail);
  }
}

/**
 * What a handler returned instead of an Observable (a stage written as an
 * `async` function returns a Promise): the error to answer 500 with. A
 * thenable gets a rejection handler first, or its rejection, unhandled,
 * ended the process (review RR2 #1): it is answered 500 as a resolved one is.
 */
function notObservable(out: unknown, err: unknown): unknown {
  const then = (out as { then?: unknown } | null | undefined)?.then;
  if (typeof then !== 'function') return err ?? new TypeError('a route\'s handler returned no Observable');
  then.call(out, undefined, ignore);
  return new TypeError('a route\'s handler returned a Promise, not an Observable (a stage must return one: wrap it in from() or defer())', { cause: err });
}
const ignore = (): void => {};

const hasRefusal = (entry: Entry): boolean => entry.refusal !== null;
const servesAny = (): boolean => true;
const passes = (entry: Entry, req: GatewayRequest): boolean => entry.when === null || entry.when(req);
