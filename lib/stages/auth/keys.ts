import { createPublicKey, type KeyObject } from 'node:crypto';
import type { JWTVerifyGetKey } from 'jose';
import { remoteJwks, type RemoteJwksOptions } from './jwks.ts';

/** HMAC algorithms: verified with a shared secret. */
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;

/** Public-key algorithms: verified with a PEM public key or a JWKS. */
export const PUBLIC_KEY_ALGORITHMS = [
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA', 'Ed25519',
] as const;

/**
 * HS256 wants a key at least as long as its hash (RFC 7518 §3.2); shorter
 * secrets are refused when the stage is built.
 */
const MIN_SECRET_BYTES = 32;

/** Where verification keys come from: exactly one of these. */
export interface KeySourceOptions {
  /** Shared secret for HS256/384/512 (UTF-8 string or raw bytes), at least 32 bytes. */
  secret?: string | Uint8Array;
  /** PEM public key (SPKI) or X.509 certificate for RS/PS/ES/EdDSA. */
  publicKey?: string;
  /** JWKS URL; keys are cached and refetched on an unknown `kid` (see `jwks`). */
  jwksUrl?: string;
  /** Cache, cooldown and timeout of the JWKS fetch (only with `jwksUrl`). */
  jwks?: RemoteJwksOptions;
}

/**
 * A resolved key source: what jose verifies with, and the algorithms that
 * make sense for it (an HMAC secret never verifies an RS256 token and a public
 * key never verifies an HS256 one — the classic algorithm-confusion attack).
 */
export interface KeySource {
  readonly kind: 'secret' | 'publicKey' | 'jwks';
  readonly key: Uint8Array | KeyObject | JWTVerifyGetKey;
  readonly algorithms: readonly string[];
}

/**
 * Builds a key source once, at build time. Throws `TypeError` unless exactly
 * one of `secret`, `publicKey`, `jwksUrl` is given and it is usable.
 */
export function keySource(options: KeySourceOptions): KeySource {
  const given = (['secret', 'publicKey', 'jwksUrl'] as const).filter((k) => options[k] !== undefined);
  if (given.length !== 1) {
    throw new TypeError(`jwtAuth: expected exactly one of secret, publicKey, jwksUrl; got ${given.length === 0 ? 'none' : given.join(', ')}`);
  }
  if (options.jwks !== undefined && options.jwksUrl === undefined) {
    throw new TypeError('jwtAuth: jwks options need jwksUrl');
  }
  if (options.secret !== undefined) {
    const bytes = typeof options.secret === 'string' ? new TextEncoder().encode(options.secret) : options.secret;
    if (bytes.byteLength < MIN_SECRET_BYTES) {
      throw new TypeError(`jwtAuth: secret must be at least ${MIN_SECRET_BYTES} bytes, got ${bytes.byteLength}`);
    }
    return { kind: 'secret', key: bytes, algorithms: HMAC_ALGORITHMS };
  }
  if (options.publicKey !== undefined) {
    let key: KeyObject;
    try {
      key = createPublicKey(options.publicKey);
    } catch (cause) {
      throw new TypeError(`jwtAuth: publicKey is not a PEM public key or certificate (${(cause as Error).message})`);
    }
    return { kind: 'publicKey', key, algorithms: PUBLIC_KEY_ALGORITHMS };
  }
  return { kind: 'jwks', key: remoteJwks(options.jwksUrl!, options.jwks), algorithms: PUBLIC_KEY_ALGORITHMS };
}

/**
 * Checks a configured `algorithms` list against the key source: every entry
 * must be known and fit the key kind. Returns the list to verify with.
 */
export function checkAlgorithms(source: KeySource, algorithms: readonly string[] | undefined): string[] {
  if (algorithms === undefined) return [...source.algorithms];
  if (algorithms.length === 0) throw new TypeError('jwtAuth: algorithms must not be empty');
  for (const alg of algorithms) {
    if (!source.algorithms.includes(alg)) {
      const known = (HMAC_ALGORITHMS as readonly string[]).includes(alg) || (PUBLIC_KEY_ALGORITHMS as readonly string[]).includes(alg);
      throw new TypeError(known
        ? `jwtAuth: algorithm ${alg} cannot be verified with a ${source.kind === 'secret' ? 'shared secret' : 'public key'}`
        : `jwtAuth: unsupported algorithm ${JSON.stringify(alg)}`);
    }
  }
  return [...algorithms];
}
