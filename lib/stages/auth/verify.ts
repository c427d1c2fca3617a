import { errors, jwtVerify, type JWTVerifyGetKey, type JWTVerifyOptions } from 'jose';
import { ServiceUnavailableError, UnauthorizedError, type GatewayError } from '../../errors.ts';
import type { Clock } from '../../types.ts';
import { invalidTokenChallenge } from './bearer.ts';
import { unnamedKeySet } from './jwks.ts';
import type { KeySource } from './keys.ts';

/** Verified JWT claims, as `req.locals.claims` carries them. */
export type Claims = Record<string, unknown>;

export interface VerifierOptions {
  /** Accepted `alg` values (already checked against the key source). */
  algorithms: string[];
  /** Accepted `iss` values; unchecked when undefined. */
  issuer: string | string[] | undefined;
  /** Accepted `aud` values (one must match); unchecked when undefined. */
  audience: string | string[] | undefined;
  /** Tolerance for `exp` and `nbf`, in seconds (`iat` is compared with the clock only against a maximum token age, which is not set). */
  clockSkewSeconds: number;
  /** Claims that must be present. */
  requiredClaims: string[];
  /** Wall clock (Unix ms) for `exp`/`nbf`. */
  clock: Clock;
  /** Verified tokens remembered (0 = off). */
  cacheSize?: number;
  /** How long a verified token is remembered at most (ms); never past its `exp`. */
  cacheTtlMs?: number;
}

/**
 * Verifies one compact JWT; rejects with `UnauthorizedError` (401) or
 * `ServiceUnavailableError` (503). A token verified recently answers
 * synchronously from the cache (no Promise), as Envoy's jwt_authn cache does:
 * the same bytes were already checked, only time-based claims are re-checked.
 */
export type Verifier = (token: string) => Claims | Promise<Claims>;

interface Remembered {
  claims: Claims;
  /** Unix ms after which the entry is not used. */
  until: number;
  /** `nbf` in Unix ms, or 0. */
  notBefore: number;
}

/** Marks a failure to obtain keys (JWKS down or garbage), as opposed to a bad token. */
class KeyFetchError extends Error {}

/**
 * A token without `kid` is tried against at most this many fitting keys of
 * a set whose keys have kids (its issuer names the key in each token it
 * signs); with more, it is refused untried: each try is a signature check,
 * so a forged token against 500 RSA keys cost 136 ms of CPU (review R3).
 */
export const MAX_UNNAMED_CANDIDATES = 4;

/** More keys fit a token without `kid` than are tried (MAX_UNNAMED_CANDIDATES). */
class TooManyCandidatesError extends Error {}

/**
 * Builds the verification core: jose's `jwtVerify` with our options, and
 * every failure mapped to one gateway error whose message says why.
 */
export function createVerifier(source: KeySource, options: VerifierOptions): Verifier {
  const key = source.kind === 'jwks' ? separateFetchFailures(source.key as JWTVerifyGetKey) : source.key;
  const base: JWTVerifyOptions = {
    algorithms: options.algorithms,
    clockTolerance: options.clockSkewSeconds,
    requiredClaims: options.requiredClaims,
  };
  if (options.issuer !== undefined) base.issuer = options.issuer;
  if (options.audience !== undefined) base.audience = options.audience;
  const clock = options.clock;
  const cacheSize = options.cacheSize ?? 10_000;
  const cacheTtl = options.cacheTtlMs ?? 60_000;
  const skewMs = options.clockSkewSeconds * 1000;
  const cache = new Map<string, Remembered>();
  // The last token looked up and its entry: a client sends the same token
  // request after request, and comparing it with the last one costs less
  // than hashing it for the Map (a JWT is a few hundred characters). Cleared
  // whenever the cache changes.
  let lastToken: string | undefined;
  let lastHit: Remembered | undefined;
  /**
   * Verifications under way, by token. When a busy client's entry expires
   * (every `cacheTtl`), each of its requests in flight missed the cache and
   * checked the signature again, 50 at once behind 50 connections (an RS256
   * check each on a JWKS-keyed route): they now wait for the first one's. Only its success is shared: a waiter whose shared check
   * failed checks again on its own, so a refusal is each request's own error,
   * as before.
   */
  const verifying = new Map<string, Promise<Claims>>();
  const settled = (token: string) => () => {
    verifying.delete(token);
  };

  async function verifyJwt(token: string): Promise<Claims> {
    const now = clock.now();
    let payload: Claims;
    try {
      payload = await verifyWithKeys(token, key as JWTVerifyGetKey, { ...base, currentDate: new Date(now) });
    } catch (err) {
      throw authError(err);
    }
    if (cacheSize > 0 && typeof payload.exp === 'number') {
      if (cache.size >= cacheSize) cache.delete(cache.keys().next().value!);
      lastToken = undefined; // the entry evicted, or replaced, may be the remembered one
      cache.set(token, {
        claims: payload,
        until: Math.min(payload.exp * 1000 + skewMs, now + cacheTtl),
        notBefore: typeof payload.nbf === 'number' ? payload.nbf * 1000 - skewMs : 0,
      });
    }
    return payload;
  }

  if (cacheSize === 0) return verifyJwt;
  return function verifyCached(token) {
    let hit: Remembered | undefined;
    if (token === lastToken) {
      hit = lastHit;
    } else {
      hit = cache.get(token);
      if (hit !== undefined) {
        lastToken = token;
        lastHit = hit;
      }
    }
    if (hit !== undefined) {
      const now = clock.now();
      if (now < hit.until && now >= hit.notBefore) return hit.claims;
      cache.delete(token);
      lastToken = undefined;
    }
    const under = verifying.get(token);
    if (under !== undefined) {
      // The shared check judged exp at its own start: this request is judged at its arrival, as a cache hit is.
      const arrived = clock.now();
      return under.then((claims) => (typeof claims.exp !== 'number' || arrived < claims.exp * 1000 + skewMs ? claims : verifyJwt(token)), () => verifyJwt(token));
    }
    const verification = verifyJwt(token);
    verifying.set(token, verification);
    const forget = settled(token);
    verification.then(forget, forget);
    return verification;
  };
}

/**
 * jwtVerify, trying each key when several in a JWKS fit a token (one without
 * `kid` against a set with two RSA keys, mid-rotation), as Envoy's jwt_authn
 * does; jose leaves that to its caller (JWKSMultipleMatchingKeys holds them).
 * At most MAX_UNNAMED_CANDIDATES of them, unless no key of the set has a kid.
 */
async function verifyWithKeys(token: string, key: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<Claims> {
  try {
    return (await jwtVerify(token, key, options)).payload as Claims;
  } catch (err) {
    if (!(err instanceof errors.JWKSMultipleMatchingKeys)) throw err;
    const capped = !unnamedKeySet(err);
    // Counted before any is tried (importing a key is cached; verifying is what costs).
    const candidates: CryptoKey[] = [];
    for await (const candidate of err as unknown as AsyncIterable<CryptoKey>) {
      candidates.push(candidate);
      if (capped && candidates.length > MAX_UNNAMED_CANDIDATES) throw new TooManyCandidatesError();
    }
    for (const candidate of candidates) {
      try {
        return (await jwtVerify(token, candidate, options)).payload as Claims;
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
      }
    }
    throw new errors.JWSSignatureVerificationFailed();
  }
}

/**
 * jose reports an unreachable JWKS with the same kinds of errors it uses for
 * bad tokens; wrap the resolver so a fetch failure stays recognisable (it is
 * our outage, a 503, not the client's fault).
 */
function separateFetchFailures(getKey: JWTVerifyGetKey): JWTVerifyGetKey {
  return async function resolveJwk(header, token) {
    try {
      return await getKey(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) throw err;
      throw new KeyFetchError('JWKS fetch failed', { cause: err });
    }
  };
}

function unauthorized(description: string, cause: unknown): UnauthorizedError {
  return new UnauthorizedError(description, { cause, headers: { 'www-authenticate': invalidTokenChallenge(description) } });
}

/** Maps a jose (or JWKS fetch) failure to the error the client sees. */
export function authError(err: unknown): GatewayError {
  if (err instanceof KeyFetchError) {
    return new ServiceUnavailableError('token signing keys are unavailable', { cause: err.cause, headers: { 'retry-after': '5' } });
  }
  if (err instanceof TooManyCandidatesError) {
    return unauthorized(`token names no key (kid) and more than ${MAX_UNNAMED_CANDIDATES} signing keys fit it`, err);
  }
  if (err instanceof errors.JWTExpired) {
    return unauthorized(err.claim === 'iat' ? 'token too old' : 'token expired', err);
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return unauthorized(`token lacks required claim ${err.claim}`, err);
    switch (err.claim) {
      case 'nbf': return unauthorized('token not yet valid', err);
      case 'iat': return unauthorized('token issued in the future', err);
      case 'iss': return unauthorized('wrong token issuer', err);
      case 'aud': return unauthorized('wrong token audience', err);
      default: return unauthorized(`invalid ${err.claim} claim`, err);
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return unauthorized('bad token signature', err);
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthorized('token algorithm not allowed', err);
  if (err instanceof errors.JWKSNoMatchingKey) return unauthorized('no signing key matches the token', err);
  if (err instanceof errors.JWKSMultipleMatchingKeys) return unauthorized('several signing keys match the token', err);
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return unauthorized('malformed token', err);
  return unauthorized('invalid token', err);
}
