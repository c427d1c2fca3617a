import { createRemoteJWKSet, type RemoteJWKSet } from 'jose';
import { parseDuration, type Duration } from '../../duration.ts';

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
   * refetch (keys rotated out at the issuer stop verifying after this).
   * @default '10m'
   */
  cacheMaxAge?: Duration;
  /**
   * Timeout of one JWKS fetch; when reached the token fails with 503.
   * @default '5s'
   */
  timeout?: Duration;
}

const defaults = {
  cooldown: '30s',
  cacheMaxAge: '10m',
  timeout: '5s',
} satisfies Required<RemoteJwksOptions>;

/**
 * A cached JWKS resolver over jose's `createRemoteJWKSet`, which already does
 * what we want: one fetch in flight at a time, refetch on an unknown `kid`
 * only once `cooldown` has passed since the last fetch, expiry after
 * `cacheMaxAge`. Build it once and share it between routes that trust the same
 * issuer (pass it as `jwtAuth({ keys })`).
 */
export function remoteJwks(url: string, options: RemoteJwksOptions = {}): RemoteJWKSet {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`jwtAuth: jwksUrl is not a URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new TypeError(`jwtAuth: jwksUrl must be http(s), got ${parsed.protocol}`);
  }
  const cooldown = parseDuration(options.cooldown ?? defaults.cooldown, 'jwks.cooldown');
  const cacheMaxAge = parseDuration(options.cacheMaxAge ?? defaults.cacheMaxAge, 'jwks.cacheMaxAge');
  const timeout = Math.round(parseDuration(options.timeout ?? defaults.timeout, 'jwks.timeout'));
  return createRemoteJWKSet(parsed, { cooldownDuration: cooldown, cacheMaxAge, timeoutDuration: timeout });
}
