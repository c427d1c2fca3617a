import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { parseDuration, type Duration } from '../../duration.ts';
import { systemRuntime } from '../../runtime.ts';

export interface RemoteJwksOptions {
  /**
   * After a successful fetch, how long a token with an unknown `kid` is
   * refused without refetching. This is what stops a flood of tokens with
   * made-up `kid`s from turning into a flood of JWKS fetches.
   * @default '30s'
   */
  cooldown?: Duration;
  /**
   * How long fetched keys are trusted before the next token triggers a
   * refetch (keys rotated out at the issuer stop verifying after this). When
   * that refetch fails, the keys already fetched stay in use until one
   * succeeds.
   * @default '10m'
   */
  cacheMaxAge?: Duration;
  /**
   * Timeout of one JWKS fetch; when reached the token fails with 503.
   * @default '5s'
   */
  timeout?: Duration;
  /**
   * How long past `cacheMaxAge` keys are still used while every refetch
   * fails; after that tokens get 503 until a fetch succeeds, so a key the
   * issuer withdrew during its outage stops verifying. ASP.NET keeps its
   * last known good keys 1 h by default; jose4j none unless asked.
   * @default '24h'
   */
  staleMaxAge?: Duration;
}

const defaults = {
  cooldown: '30s',
  cacheMaxAge: '10m',
  timeout: '5s',
  staleMaxAge: '24h',
} satisfies Required<RemoteJwksOptions>;

/**
 * After a failed fetch, no other is made for this long: an IdP that is down
 * (or answers garbage) gets one fetch a second, not one per request. Envoy's
 * jwt_authn waits the same by default (`failed_refetch_duration`, 1 s).
 */
const FAILED_REFETCH_MS = 1000;

const ACCEPT = 'application/json, application/jwk-set+json';

/** Failures to choose among several fitting keys from a set in which no key has a `kid` (see unnamedKeySet). */
const fromUnnamedSets = new WeakSet<object>();

/**
 * Whether `err` (jose's JWKSMultipleMatchingKeys) came from a set with no
 * `kid` on any key: its issuer cannot name a key in a token, so each
 * fitting key must be tried, however many there are.
 */
export function unnamedKeySet(err: unknown): boolean {
  return typeof err === 'object' && err !== null && fromUnnamedSets.has(err);
}

/**
 * A cached JWKS resolver: jose's `createLocalJWKSet` over the last set
 * fetched. One fetch in flight at a time; a refetch on an unknown `kid`
 * only once `cooldown` has passed since the last successful fetch; a
 * refetch after `cacheMaxAge`. What jose's `createRemoteJWKSet` does not:
 * a failed fetch is not repeated for a second (it was repeated for every
 * request while the IdP was down), and a refetch that fails after
 * `cacheMaxAge` keeps the keys it had (they were dropped: every token got
 * 503 from the moment the IdP blinked at the 10-minute mark). While fetches
 * keep failing, old keys are used at once and the refetch runs beside the
 * requests, so a hung IdP does not hold every request for `timeout`. With
 * no keys yet, a failed fetch rejects (the token gets 503). Build it once
 * and share it between routes that trust the same issuer (pass it as
 * `jwtAuth({ keys })`).
 */
export function remoteJwks(url: string, options: RemoteJwksOptions = {}, now: () => number = systemRuntime.now): JWTVerifyGetKey {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`jwtAuth: jwksUrl is not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new TypeError(`jwtAuth: jwksUrl must be http(s), got ${parsed.protocol}`);
  }
  const href = parsed.href;
  const cooldown = parseDuration(options.cooldown ?? defaults.cooldown, 'jwks.cooldown');
  const cacheMaxAge = parseDuration(options.cacheMaxAge ?? defaults.cacheMaxAge, 'jwks.cacheMaxAge');
  const timeout = Math.round(parseDuration(options.timeout ?? defaults.timeout, 'jwks.timeout'));
  const staleMaxAge = parseDuration(options.staleMaxAge ?? defaults.staleMaxAge, 'jwks.staleMaxAge');

  let local: JWTVerifyGetKey | undefined;
  /** The set's keys without a `kid`, when it also has keys with one: what a token without `kid` is tried against. */
  let localBare: JWTVerifyGetKey | null = null;
  let unnamed = false;
  let fetchedAt = -Infinity;
  let failedAt = -Infinity;
  let failure: unknown;
  let pending: Promise<void> | undefined;

  function refresh(): Promise<void> {
    if (pending !== undefined) return pending;
    if (now() < failedAt + FAILED_REFETCH_MS) return Promise.reject(failure);
    // createLocalJWKSet refuses what is not a key set: a failure like any other.
    pending = fetchJwks(href, timeout).then((set) => {
      const bare = set.keys.filter((k) => typeof k.kid !== 'string');
      const mixed = bare.length > 0 && bare.length < set.keys.length;
      return { keys: createLocalJWKSet(set), bare: mixed ? createLocalJWKSet({ keys: bare }) : null, named: bare.length < set.keys.length };
    }).then(({ keys, bare, named }) => {
      local = keys;
      localBare = bare;
      unnamed = !named;
      fetchedAt = now();
    }, (err: unknown) => {
      failedAt = now();
      failure = err;
      throw err;
    }).finally(() => {
      pending = undefined;
    });
    return pending;
  }

  return async function jwksKey(header, token) {
    // No keys yet, or kept past staleMaxAge while refetches failed: a failure is a 503.
    if (local === undefined || now() >= fetchedAt + cacheMaxAge + staleMaxAge) {
      await refresh();
    } else if (now() >= fetchedAt + cacheMaxAge) {
      // Known to fail since the last good fetch: keep the old keys, try again beside this request.
      if (failedAt > fetchedAt) refresh().catch(ignore);
      else await refresh().catch(ignore);
    }
    try {
      return await keysFor(header)(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || now() < fetchedAt + cooldown) throw marked(err, header);
      await refresh();
      try {
        return await keysFor(header)(header, token);
      } catch (again) {
        throw marked(again, header);
      }
    }
  };

  /** A token without `kid` against a set that has keys without one: those keys only (review R4). */
  function keysFor(header: { kid?: string }): JWTVerifyGetKey {
    return header.kid === undefined && localBare !== null ? localBare : local!;
  }

  /** Several keys without a `kid` fit: the issuer signs without naming keys, so each is tried (no cap). */
  function marked(err: unknown, header: { kid?: string }): unknown {
    const bare = unnamed || (header.kid === undefined && localBare !== null);
    if (bare && err instanceof errors.JWKSMultipleMatchingKeys) fromUnnamedSets.add(err);
    return err;
  }
}

function ignore(): void {}

async function fetchJwks(href: string, timeoutMs: number): Promise<JSONWebKeySet> {
  const res = await fetch(href, { redirect: 'manual', signal: AbortSignal.timeout(timeoutMs), headers: { accept: ACCEPT } });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`JWKS answered ${res.status}, expected 200`);
  }
  return await res.json() as JSONWebKeySet;
}
