import { from, switchMap, type Subscriber } from 'rxjs';
import {
  bearerToken, grantedScopes, insufficientScopeChallenge, invalidTokenChallenge, missingScopes, missingTokenChallenge,
} from './bearer.ts';
import { checkAlgorithms, keySource, type KeySource, type KeySourceOptions } from './keys.ts';
import { createVerifier, type Claims } from './verify.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { ForbiddenError, UnauthorizedError } from '../../errors.ts';
import { systemRuntime } from '../../runtime.ts';
import { stageHandler, subscribeNext } from '../../subscriber.ts';
import type { Clock, GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';

/** `required`: no valid token, no entry. `optional`: no token passes without claims, a bad one is refused. `none`: the stage is skipped. */
export type AuthMode = 'required' | 'optional' | 'none';

export interface JwtAuthOptions extends KeySourceOptions {
  /**
   * Whether the route needs a token (YAML: the route's `auth:` key).
   * @default 'required'
   */
  mode?: AuthMode;
  /**
   * A key source built once with `keySource()` and shared between routes
   * (one JWKS cache per issuer); instead of `secret`/`publicKey`/`jwksUrl`.
   */
  keys?: KeySource;
  /**
   * Accepted `alg` values.
   * @default HS256/384/512 for a secret; RS*, PS*, ES*, EdDSA for a public key or JWKS
   */
  algorithms?: string[];
  /** Accepted `iss` value(s). Unchecked when absent. */
  issuer?: string | string[];
  /** Accepted `aud` value(s); the token must name one. Unchecked when absent. */
  audience?: string | string[];
  /**
   * How far `exp`/`nbf` may be off between the issuer's clock and ours.
   * @default '30s'
   */
  clockTolerance?: Duration;
  /**
   * Claims every token must carry. `exp` by default: a token that never
   * expires is a password that cannot be changed.
   * @default ['exp']
   */
  requiredClaims?: string[];
  /**
   * Scopes (or roles) the token must all grant; 403 otherwise.
   * @default []
   */
  scopes?: string[];
  /**
   * Claim holding the scopes: a space-separated string (`scope`) or an array (`scp`, `roles`).
   * @default 'scope'
   */
  scopeClaim?: string;
  /**
   * Claims copied to upstream request headers, e.g. `{ sub: 'x-user-id' }`.
   * Those headers are always removed from the client's request first, so a
   * client cannot forge them.
   * @default {}
   */
  forwardClaims?: Record<string, string>;
  /**
   * Remove `authorization` before the request goes upstream (once verified):
   * the next stage gets a copy of the request without it, so a retry above
   * this stage still finds the token on the request the client sent.
   * @default false
   */
  stripAuthorization?: boolean;
  /**
   * Realm named in the challenge to requests without a token.
   * @default 'rxgate'
   */
  realm?: string;
  /**
   * Wall clock (Unix ms) for `exp`/`nbf`.
   * @default systemRuntime.wallNow
   */
  clock?: Clock;
  /**
   * Verified tokens remembered, so a client reusing its token skips signature
   * checks (like Envoy's jwt_cache_config); 0 turns it off.
   * @default 10000
   */
  tokenCache?: number;
  /**
   * How long a verified token is remembered at most (never past its `exp`):
   * bounds how long a key removed from the JWKS keeps being honoured.
   * @default '60s'
   */
  tokenCacheTtl?: Duration;
}

const systemClock: Clock = { now: systemRuntime.wallNow };

const defaults = {
  mode: 'required',
  clockTolerance: '30s',
  requiredClaims: ['exp'],
  scopes: [],
  scopeClaim: 'scope',
  forwardClaims: {},
  stripAuthorization: false,
  realm: 'rxgate',
  clock: systemClock,
  tokenCache: 10_000,
  tokenCacheTtl: '60s',
} satisfies Required<Omit<JwtAuthOptions, keyof KeySourceOptions | 'keys' | 'algorithms' | 'issuer' | 'audience'>>;

const MODES: readonly AuthMode[] = ['required', 'optional', 'none'];
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
// Header values may not carry control characters (CR/LF would split the header).
const UNSAFE_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * Verifies `authorization: Bearer <jwt>` and puts the claims at
 * `req.locals.claims` for later stages. Missing or bad tokens fail with
 * `UnauthorizedError` (401) carrying a `www-authenticate` challenge; a token
 * without a required scope fails with `ForbiddenError` (403); an unreachable
 * JWKS fails with `ServiceUnavailableError` (503).
 */
export function jwtAuth(options: JwtAuthOptions = {}): Policy {
  const mode = options.mode ?? defaults.mode;
  if (!MODES.includes(mode)) throw new TypeError(`jwtAuth: mode must be one of ${MODES.join(', ')}, got ${JSON.stringify(mode)}`);
  if (mode === 'none') return (next) => next;

  let source: KeySource;
  if (options.keys !== undefined) {
    if (options.secret !== undefined || options.publicKey !== undefined || options.jwksUrl !== undefined) {
      throw new TypeError('jwtAuth: give either keys or secret/publicKey/jwksUrl, not both');
    }
    source = options.keys;
  } else {
    source = keySource(options);
  }
  const clockTolerance = parseDuration(options.clockTolerance ?? defaults.clockTolerance, 'jwtAuth.clockTolerance');
  const scopes = options.scopes ?? defaults.scopes;
  const scopeClaim = options.scopeClaim ?? defaults.scopeClaim;
  const stripAuthorization = options.stripAuthorization ?? defaults.stripAuthorization;
  const forward = forwardedClaims(options.forwardClaims ?? defaults.forwardClaims);
  const realm = options.realm ?? defaults.realm;

  const verify = createVerifier(source, {
    algorithms: checkAlgorithms(source, options.algorithms),
    issuer: options.issuer,
    audience: options.audience,
    clockSkewSeconds: clockTolerance / 1000,
    requiredClaims: options.requiredClaims ?? defaults.requiredClaims,
    clock: options.clock ?? defaults.clock,
    cacheSize: options.tokenCache ?? defaults.tokenCache,
    cacheTtlMs: parseDuration(options.tokenCacheTtl ?? defaults.tokenCacheTtl, 'jwtAuth.tokenCacheTtl'),
  });

  /** Checks scopes, sets the claims; returns the request to pass on. */
  function admit(req: GatewayRequest, claims: Claims): GatewayRequest {
    // No scopes required (the usual case): no granted-scope Set to build.
    const missing = scopes.length === 0 ? scopes : missingScopes(grantedScopes(claims, scopeClaim), scopes);
    if (missing.length > 0) {
      const description = `token lacks required scope: ${missing.join(' ')}`;
      throw new ForbiddenError(description, { headers: { 'www-authenticate': insufficientScopeChallenge(description, scopes) } });
    }
    req.locals.claims = claims;
    for (let i = 0; i < forward.length; i++) {
      const [claim, header] = forward[i]!;
      const value = headerValue(claims[claim]);
      if (value !== undefined) req.headers[header] = value;
    }
    if (!stripAuthorization) return req;
    const headers: Record<string, string> = {};
    for (const name in req.headers) if (name !== 'authorization') headers[name] = req.headers[name]!;
    return { ...req, headers };
  }

  let lastAuthorization: string | undefined;
  let lastToken: string | null | undefined;

  /** The check, run when a request's Observable is subscribed. */
  function check(next: Handler, req: GatewayRequest, subscriber: Subscriber<GatewayResponse>): void {
    // Indexed loops: no iterator (and no [claim, header] array) per request when nothing is forwarded.
    // Looked up first: a `delete` of a header the request lacks (the usual case) still costs a runtime call.
    for (let i = 0; i < forward.length; i++) if (req.headers[forward[i]![1]] !== undefined) delete req.headers[forward[i]![1]];
    const authorization = req.headers.authorization;
    // bearerToken is pure, and a client sends the same header request after
    // request: comparing it with the last one is cheaper than parsing it again
    // (and hands verify the very same token string, which it compares for free).
    let token: string | null | undefined;
    if (authorization !== undefined && authorization === lastAuthorization) {
      token = lastToken;
    } else {
      token = bearerToken(authorization);
      lastAuthorization = authorization;
      lastToken = token;
    }
    if (token === undefined) {
      if (mode === 'optional') subscribeNext(next, req, subscriber);
      else {
        subscriber.error(new UnauthorizedError('missing bearer token', {
          headers: { 'www-authenticate': missingTokenChallenge(realm) },
        }));
      }
      return;
    }
    if (token === null) {
      subscriber.error(new UnauthorizedError('malformed token', {
        headers: { 'www-authenticate': invalidTokenChallenge('malformed token') },
      }));
      return;
    }
    const verified = verify(token);
    if (!(verified instanceof Promise)) {
      // Cached: no Promise, no extra tick on the hot path.
      subscribeNext(next, admit(req, verified), subscriber);
      return;
    }
    from(verified).pipe(switchMap((claims) => next(admit(req, claims)))).subscribe(subscriber);
  }

  // Not `defer`: on the hot path (a cached token) the checks run and the
  // next stage is subscribed right here, with no inner Observable to build.
  // A throw in here (admit's 403) reaches the subscriber as its error, as it
  // did from defer's factory. A StageCall: one object per request, none
  // when the stage before starts this one directly (stageHandler).
  return (next) => stageHandler('jwtAuthHandler', check, next);
}

function forwardedClaims(map: Record<string, string>): Array<[string, string]> {
  return Object.entries(map).map(([claim, header]) => {
    const name = header.toLowerCase();
    if (!HEADER_NAME.test(name)) throw new TypeError(`jwtAuth: forwardClaims.${claim}: not a header name: ${JSON.stringify(header)}`);
    if (name === 'authorization' || name === 'host') throw new TypeError(`jwtAuth: forwardClaims.${claim}: cannot write ${name}`);
    return [claim, name];
  });
}

/** A claim as a header value: strings as-is, arrays comma-joined, objects as JSON; unsafe or absent → undefined. */
function headerValue(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else if (Array.isArray(value) && value.every((v) => typeof v !== 'object' || v === null)) text = value.join(',');
  else text = JSON.stringify(value);
  return UNSAFE_VALUE.test(text) ? undefined : text;
}
