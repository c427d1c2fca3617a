import { createPublicKey } from 'node:crypto';
import { z } from 'zod';
import { duration, headerName, httpUrl, timerDuration } from '../../config/common.ts';
import { HMAC_ALGORITHMS, PUBLIC_KEY_ALGORITHMS } from './keys.ts';

const mode = z.enum(['required', 'optional', 'none']);
/** As keys.ts: HS256 wants a key at least as long as its hash. */
const MIN_SECRET_BYTES = 32;

/** `auth:` on a route (and, as defaults for every route, at the top level). A string is the mode alone. */
export const authOptions = z.union([
  mode,
  z.strictObject({
    mode: mode.optional(),
    // What jwtAuth would refuse when it is built, refused here with the key's path (and by --check).
    secret: z.string().min(1).refine((v) => Buffer.byteLength(v) >= MIN_SECRET_BYTES, `must be at least ${MIN_SECRET_BYTES} bytes`).optional(),
    publicKey: z.string().min(1).refine(isPublicKey, 'expected a PEM public key (SPKI) or an X.509 certificate').optional(),
    jwksUrl: httpUrl.optional(),
    algorithms: z.array(z.string()).optional(),
    issuer: z.union([z.string(), z.array(z.string())]).optional(),
    audience: z.union([z.string(), z.array(z.string())]).optional(),
    clockTolerance: duration.optional(),
    requiredClaims: z.array(z.string()).optional(),
    scopes: z.array(z.string()).optional(),
    scopeClaim: z.string().optional(),
    forwardClaims: z.record(z.string(), headerName.refine((h) => !['authorization', 'host'].includes(h.toLowerCase()), 'cannot write this header')).optional(),
    stripAuthorization: z.boolean().optional(),
    realm: z.string().optional(),
    tokenCache: z.number().int().nonnegative().optional(),
    tokenCacheTtl: duration.optional(),
    jwks: z.strictObject({ cooldown: duration.optional(), cacheMaxAge: duration.optional(), timeout: timerDuration.optional(), staleMaxAge: duration.optional() }).optional(),
  }).superRefine(oneKeySource).superRefine(algorithmsFitKey),
]);
export type AuthConfig = z.output<typeof authOptions>;

function isPublicKey(pem: string): boolean {
  try {
    createPublicKey(pem);
    return true;
  } catch {
    return false;
  }
}

/**
 * One key source per auth object, and `jwks` settings only beside a
 * `jwksUrl` or with no key (a route's `jwks` beside the top-level `jwksUrl`):
 * keySource refuses the rest when the gateway starts, with no key path.
 */
function oneKeySource(o: { secret?: string | undefined; publicKey?: string | undefined; jwksUrl?: string | undefined; jwks?: object | undefined }, ctx: z.RefinementCtx): void {
  const given = (['secret', 'publicKey', 'jwksUrl'] as const).filter((k) => o[k] !== undefined);
  if (given.length > 1) {
    ctx.addIssue({ code: 'custom', path: [given[1]!], message: `only one key source per auth: ${given.join(' and ')} are both set` });
  } else if (o.jwks !== undefined && given.length === 1 && given[0] !== 'jwksUrl') {
    ctx.addIssue({ code: 'custom', path: ['jwks'], message: `jwks settings need jwksUrl; this auth verifies with its ${given[0]}` });
  }
}

/** Each listed algorithm must exist and, when this object names a key, fit it (an RSA key never verifies HS256). */
function algorithmsFitKey(o: { algorithms?: string[] | undefined; secret?: string | undefined; publicKey?: string | undefined; jwksUrl?: string | undefined }, ctx: z.RefinementCtx): void {
  const hmac: readonly string[] = HMAC_ALGORITHMS;
  const pub: readonly string[] = PUBLIC_KEY_ALGORITHMS;
  const fits = o.secret !== undefined ? hmac : o.publicKey !== undefined || o.jwksUrl !== undefined ? pub : [...hmac, ...pub];
  if (o.algorithms?.length === 0) ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'must not be empty' });
  o.algorithms?.forEach((alg, i) => {
    if (fits.includes(alg)) return;
    const known = hmac.includes(alg) || pub.includes(alg);
    ctx.addIssue({ code: 'custom', path: ['algorithms', i], message: known ? `${alg} cannot be verified with a ${o.secret !== undefined ? 'shared secret' : 'public key'}` : `unsupported algorithm ${JSON.stringify(alg)}` });
  });
}
