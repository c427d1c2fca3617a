import { z } from 'zod';
import { duration, httpUrl } from '../../config/common.ts';

const mode = z.enum(['required', 'optional', 'none']);

/** `auth:` on a route (and, as defaults for every route, at the top level). A string is the mode alone. */
export const authOptions = z.union([
  mode,
  z.strictObject({
    mode: mode.optional(),
    secret: z.string().min(1).optional(),
    publicKey: z.string().min(1).optional(),
    jwksUrl: httpUrl.optional(),
    algorithms: z.array(z.string()).optional(),
    issuer: z.union([z.string(), z.array(z.string())]).optional(),
    audience: z.union([z.string(), z.array(z.string())]).optional(),
    clockTolerance: duration.optional(),
    requiredClaims: z.array(z.string()).optional(),
    scopes: z.array(z.string()).optional(),
    scopeClaim: z.string().optional(),
    forwardClaims: z.record(z.string(), z.string()).optional(),
    stripAuthorization: z.boolean().optional(),
    realm: z.string().optional(),
    tokenCache: z.number().int().nonnegative().optional(),
    tokenCacheTtl: duration.optional(),
    jwks: z.strictObject({ cooldown: duration.optional(), cacheMaxAge: duration.optional(), timeout: duration.optional() }).optional(),
  }),
]);
export type AuthConfig = z.output<typeof authOptions>;
