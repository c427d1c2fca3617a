import { defined } from '../../config/defined.ts';
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
    return cors(defined(options));
  },
});
