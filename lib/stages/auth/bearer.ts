/**
 * RFC 6750 plumbing: reading a bearer token from `authorization`, the
 * `www-authenticate` challenges, and reading scopes out of verified claims.
 */

const BEARER = /^bearer(?:[ \t]+(.*))?$/i;
// RFC 6750 b64token; a compact JWT only ever uses the base64url alphabet and dots.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

/**
 * The bearer token of an `authorization` header: `undefined` when the client
 * sent no bearer credentials at all (no header, or another scheme such as
 * Basic), `null` when it sent `Bearer` with something that is not a token.
 */
export function bearerToken(authorization: string | undefined): string | null | undefined {
  if (authorization === undefined) return undefined;
  // Fast path for the form every client sends, `Bearer <token>` with one
  // space and nothing around it: the general path below would give the same
  // token (nothing to trim, and a b64token has no space or line break).
  if (authorization.length > 7 && authorization.charCodeAt(6) === 32 && authorization.slice(0, 6).toLowerCase() === 'bearer') {
    const token = authorization.slice(7);
    if (B64TOKEN.test(token)) return token;
  }
  const m = BEARER.exec(authorization.trim());
  if (m === null) return undefined;
  const token = m[1]?.trim() ?? '';
  return B64TOKEN.test(token) ? token : null;
}

/** Keeps a value inside an auth-param quoted-string: no quotes, backslashes or control characters. */
function quoted(value: string): string {
  return `"${value.replace(/[\\"\u0000-\u001f\u007f]/g, ' ')}"`;
}

/** The challenge for a request without credentials: no error code (RFC 6750 §3.1). */
export function missingTokenChallenge(realm: string): string {
  return `Bearer realm=${quoted(realm)}`;
}

/** The challenge for a token that is malformed, expired, badly signed or otherwise unacceptable. */
export function invalidTokenChallenge(description: string): string {
  return `Bearer error="invalid_token", error_description=${quoted(description)}`;
}

/** The challenge for a valid token that lacks a scope the route requires. */
export function insufficientScopeChallenge(description: string, required: readonly string[]): string {
  return `Bearer error="insufficient_scope", error_description=${quoted(description)}, scope=${quoted(required.join(' '))}`;
}

/**
 * The scopes a token grants, read from `claim`: a space-separated string
 * (OAuth `scope`) or an array of strings (`scp`, `roles`). Anything else
 * grants nothing.
 */
export function grantedScopes(claims: Record<string, unknown>, claim: string): Set<string> {
  const value = claims[claim];
  if (typeof value === 'string') return new Set(value.split(/\s+/).filter((s) => s !== ''));
  if (Array.isArray(value)) return new Set(value.filter((s): s is string => typeof s === 'string'));
  return new Set();
}

/** The required scopes missing from `granted`, in the order they were required. */
export function missingScopes(granted: Set<string>, required: readonly string[]): string[] {
  return required.filter((s) => !granted.has(s));
}
