import { defined } from '../../config/defined.ts';
import type { RouteConfig } from '../../config/schema.ts';
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
    const served = pathMethods(ctx.config.routes, ctx.route.path);
    return cors(served === null ? o : { ...o, methods: advertised(o.methods ?? DEFAULT_METHODS, served) });
  },
});

/** cors()'s default `methods`. */
const DEFAULT_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'];

/**
 * The methods some route on `path` answers (HEAD where GET is, as the
 * router has it), or null when one of them takes every method. A
 * preflight is answered by the route that takes OPTIONS, but the request
 * it announces goes to whichever route on the path takes its method.
 */
function pathMethods(routes: readonly RouteConfig[], path: string): Set<string> | null {
  const out = new Set<string>();
  for (const r of routes) {
    if (r.path !== path) continue;
    if (r.methods === undefined) return null;
    for (const m of r.methods) out.add(m);
  }
  if (out.has('GET')) out.add('HEAD');
  return out;
}

/**
 * What a preflight may advertise: the configured methods the path serves
 * (`*` stands for all of them), so a page is never told a method is
 * allowed that would get 405. Worked out once, when the route is built.
 */
function advertised(configured: readonly string[], served: ReadonlySet<string>): string[] {
  const all = [...served].filter((m) => m !== 'OPTIONS');
  const kept = configured.includes('*') ? all : configured.filter((m) => served.has(m));
  return kept.length > 0 ? kept : [...served];
}
