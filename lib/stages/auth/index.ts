import { defined, type Defined } from '../../config/defined.ts';
import { defineStage } from '../define.ts';
import { jwtAuth } from './jwt-auth.ts';
import { keySource, type KeySource } from './keys.ts';
import { authOptions, type AuthConfig } from './schema.ts';

export { jwtAuth, type AuthMode, type JwtAuthOptions } from './jwt-auth.ts';
export { keySource, type KeySource } from './keys.ts';

/**
 * `auth`: JWT verification (401/403 before anything else runs). The
 * top-level `auth` object holds defaults (keys, issuer…) for every route;
 * a route sets the mode (`auth: required`) or its own object over them.
 */
export const authStage = defineStage({
  name: 'auth',
  options: authOptions,
  build(own, ctx) {
    // Public routes drop every forwarded-claim header too, before the pipeline (build-routes.ts).
    if (own === 'none' || (typeof own === 'object' && own.mode === 'none')) return null;
    const top = ctx.config.auth;
    const base: Defined<Exclude<AuthConfig, string>> = typeof top === 'object' ? defined(top) : {};
    const routeObj = typeof own === 'string' ? { mode: own } : defined(own);
    const clock = { now: ctx.runtime.wallNow };
    // Routes that use the top-level keys share one key source (one JWKS cache).
    const ownsKeys = 'secret' in routeObj || 'publicKey' in routeObj || 'jwksUrl' in routeObj;
    if (!ownsKeys && typeof top === 'object') {
      const keys = ctx.resources.get<KeySource>(`auth:keys:${JSON.stringify(top)}`, () => keySource(defined(top)));
      const { secret: _s, publicKey: _p, jwksUrl: _j, jwks: _k, ...rest } = { ...base, ...routeObj };
      return jwtAuth({ ...rest, keys, clock });
    }
    // A route's own key source replaces the top-level one instead of joining
    // it (two sources are refused): the top-level `jwks` settings still apply
    // to a route's `jwksUrl`; the top-level `algorithms` only when the top
    // level names no key (then they can only be meant for the routes' keys):
    // chosen for the top-level key, they may not fit the route's (an RSA and
    // an EC key are both "a public key": RS256 inherited refused every ES256
    // token). Issuer, audience and the rest are inherited.
    const { secret: _s, publicKey: _p, jwksUrl: _j, jwks, algorithms, ...baseRest } = base;
    const topHasKey = base.secret !== undefined || base.publicKey !== undefined || base.jwksUrl !== undefined;
    return jwtAuth({
      ...baseRest,
      ...(jwks !== undefined && 'jwksUrl' in routeObj ? { jwks } : {}),
      ...(algorithms !== undefined && !topHasKey ? { algorithms } : {}),
      ...routeObj,
      clock,
    });
  },
});
