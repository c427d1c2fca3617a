import { defined } from '../../config/defined.ts';
import type { RouteConfig } from '../../config/schema.ts';
import { hostsOverlap } from '../../router/hosts.ts';
import { defineStage } from '../define.ts';
import { cors } from './cors.ts';
import { corsOptions } from './schema.ts';

export { cors, type CorsOptions } from './cors.ts';
export { originMatcher, type OriginMatcher, type OriginPattern } from './origins.ts';
export { addVary } from './vary.ts';

/**
 * `cors` on a route (or service): preflights answered by the gateway, CORS
 * headers on the way out. Before `auth` in the default order, so a
 * preflight (which carries no token) is answered without one.
 */
export const corsStage = defineStage({
  name: 'cors',
  options: corsOptions,
  service: true,
  build(options, ctx) {
    const methods = ctx.route.methods;
    if (methods !== undefined && !methods.includes('OPTIONS')) {
      throw new TypeError(`route ${ctx.routeName}: cors needs OPTIONS in its methods (preflights are OPTIONS requests), or no methods list`);
    }
    const o = defined(options);
    const served = pathMethods(ctx.config.routes.filter((r) => hostsOverlap(ctx.route.hosts, r.hosts)), ctx.route.path);
    return cors(served === null ? o : { ...o, methods: advertised(o.methods ?? DEFAULT_METHODS, served) });
  },
});

/** cors()'s default `methods`. */
const DEFAULT_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'];

/**
 * The methods the routes whose pattern matches exactly the URLs of `path`
 * answer (HEAD where GET is, as the router has it), or null when one of
 * them takes every method or another route's pattern matches some of
 * those URLs too: the router falls through to a less specific pattern
 * (`/api/users/:id` to `/api/*`) for a method the first does not take, so
 * a preflight answered by one route may announce a request another
 * answers. Then the configured list stands. Routes whose patterns are the
 * same count as one path whatever their `match` (or `hosts`): a preflight
 * carries no cookies and none of the header values `match` tests (only
 * their names), so it cannot tell which of them the request will reach, and
 * the union is the list that lets each of them pass (the route reached
 * still answers 405 to a method it does not take).
 */
function pathMethods(routes: readonly RouteConfig[], path: string): Set<string> | null {
  const own = shape(path);
  const out = new Set<string>();
  for (const r of routes) {
    const other = shape(r.path);
    if (!overlaps(own, other)) continue;
    if (other.join('/') !== own.join('/') || r.methods === undefined) return null;
    for (const m of r.methods) out.add(m.toUpperCase());
  }
  if (out.has('GET')) out.add('HEAD');
  return out;
}

/** A path's segments as the router matches them: `:name` as `:`, `*` last. */
function shape(path: string): string[] {
  return path.split('/').filter((p) => p !== '').map((p) => (p.startsWith(':') ? ':' : p));
}

/** Whether some URL matches both patterns (`:` any one non-empty segment, `*` any rest, none included). */
function overlaps(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; ; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '*' || y === '*') return true;
    if (x === undefined || y === undefined) return x === y;
    if (x !== y && x !== ':' && y !== ':') return false;
  }
}

/**
 * What a preflight may advertise: the configured methods the path serves
 * (`*` stands for all of them), so a page is never told a method is
 * allowed that would get 405. None when the operator listed none of them
 * (cors() then sends no Access-Control-Allow-Methods, and a browser lets
 * only GET, HEAD and POST through). Worked out once, when the route is built.
 */
function advertised(configured: readonly string[], served: ReadonlySet<string>): string[] {
  if (configured.includes('*')) return [...served].filter((m) => m !== 'OPTIONS');
  return configured.filter((m) => m !== 'OPTIONS' && served.has(m.toUpperCase()));
}
