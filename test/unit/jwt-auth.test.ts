import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { firstValueFrom, of, type Observable } from 'rxjs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { keySource } from '../../lib/stages/auth/keys.ts';
import { isGatewayError, type GatewayError } from '../../lib/errors.ts';
import { jwtAuth, type JwtAuthOptions } from '../../lib/stages/auth/jwt-auth.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!';
const SECRET_BYTES = new TextEncoder().encode(SECRET);
const NOW_S = 1_700_000_000; // the injected clock's "now", in Unix seconds
const clock = { now: () => NOW_S * 1000 };
const OK: GatewayResponse = { status: 200, headers: ['content-type', 'text/plain'], body: null };

function request(headers: Record<string, string> = {}): GatewayRequest {
  return gatewayRequest({ headers });
}

/** A fake upstream that records the request it was given. */
function upstream(): Handler & { seen: GatewayRequest[] } {
  const seen: GatewayRequest[] = [];
  return Object.assign((req: GatewayRequest): Observable<GatewayResponse> => {
    seen.push({ ...req, headers: { ...req.headers }, locals: { ...req.locals } });
    return of(OK);
  }, { seen });
}

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

async function hs256(claims: JWTPayload = {}, alg = 'HS256', key: Uint8Array = SECRET_BYTES): Promise<string> {
  return new SignJWT({ sub: 'user-1', exp: NOW_S + 600, ...claims }).setProtectedHeader({ alg }).sign(key);
}

async function failure(obs: Observable<GatewayResponse>): Promise<GatewayError> {
  const err: unknown = await firstValueFrom(obs).then(() => undefined, (e: unknown) => e);
  if (!isGatewayError(err)) throw new Error(`expected a gateway error, got ${String(err)}`);
  return err;
}

function run(options: JwtAuthOptions, headers: Record<string, string>) {
  const next = upstream();
  const handler = jwtAuth({ clock, ...options })(next);
  return { next, obs: handler(request(headers)) };
}

describe('jwtAuth with a shared secret', () => {
  it('admits a valid HS256 token and puts its claims at req.locals.claims', async () => {
    const { next, obs } = run({ secret: SECRET }, bearer(await hs256({ role: 'admin' })));
    expect(await firstValueFrom(obs)).toBe(OK);
    expect(next.seen[0]!.locals.claims).toMatchObject({ sub: 'user-1', role: 'admin' });
  });

  it.each(['HS384', 'HS512'])('admits a valid %s token', async (alg) => {
    const { next, obs } = run({ secret: SECRET }, bearer(await hs256({}, alg)));
    await firstValueFrom(obs);
    expect(next.seen).toHaveLength(1);
  });

  it('refuses a request without a token with a realm challenge and no error code', async () => {
    const { next, obs } = run({ secret: SECRET }, {});
    const err = await failure(obs);
    expect(err.status).toBe(401);
    expect(err.code).toBe('UNAUTHORIZED');
    expect(err.message).toBe('missing bearer token');
    expect(err.headers).toEqual({ 'www-authenticate': 'Bearer realm="rxgate"' });
    expect(next.seen).toHaveLength(0);
  });

  it('treats another authorization scheme as no token', async () => {
    const err = await failure(run({ secret: SECRET }, { authorization: 'Basic dXNlcjpwYXNz' }).obs);
    expect(err.message).toBe('missing bearer token');
  });

  it('refuses a Bearer header that carries no token as malformed', async () => {
    const err = await failure(run({ secret: SECRET }, { authorization: 'Bearer a b c' }).obs);
    expect(err.status).toBe(401);
    expect(err.headers?.['www-authenticate']).toBe('Bearer error="invalid_token", error_description="malformed token"');
  });

  it('refuses a token that is not a JWT as malformed', async () => {
    const err = await failure(run({ secret: SECRET }, bearer('abc.def')).obs);
    expect(err.message).toBe('malformed token');
  });

  it('refuses an expired token and says so in the message and the challenge', async () => {
    const err = await failure(run({ secret: SECRET }, bearer(await hs256({ exp: NOW_S - 60 }))).obs);
    expect(err.status).toBe(401);
    expect(err.message).toBe('token expired');
    expect(err.headers?.['www-authenticate']).toBe('Bearer error="invalid_token", error_description="token expired"');
  });

  it('admits a token expired by less than the clock skew', async () => {
    const { next, obs } = run({ secret: SECRET, clockTolerance: '30s' }, bearer(await hs256({ exp: NOW_S - 20 })));
    await firstValueFrom(obs);
    expect(next.seen).toHaveLength(1);
  });

  it('refuses a token expired by more than the clock skew', async () => {
    const err = await failure(run({ secret: SECRET, clockTolerance: '10s' }, bearer(await hs256({ exp: NOW_S - 20 }))).obs);
    expect(err.message).toBe('token expired');
  });

  it('refuses a token that is not valid yet', async () => {
    const err = await failure(run({ secret: SECRET }, bearer(await hs256({ nbf: NOW_S + 120 }))).obs);
    expect(err.message).toBe('token not yet valid');
  });

  it('refuses a token signed with another secret', async () => {
    const other = new TextEncoder().encode('another-secret-that-is-also-long-enough!!');
    const err = await failure(run({ secret: SECRET }, bearer(await hs256({}, 'HS256', other))).obs);
    expect(err.message).toBe('bad token signature');
    expect(err.headers?.['www-authenticate']).toContain('error="invalid_token"');
  });

  it('refuses a token from the wrong issuer', async () => {
    const err = await failure(run({ secret: SECRET, issuer: 'https://idp.example' }, bearer(await hs256({ iss: 'https://evil.example' }))).obs);
    expect(err.message).toBe('wrong token issuer');
  });

  it('admits a token from one of several accepted issuers and audiences', async () => {
    const token = await hs256({ iss: 'b', aud: ['api', 'other'] });
    const { next, obs } = run({ secret: SECRET, issuer: ['a', 'b'], audience: ['api'] }, bearer(token));
    await firstValueFrom(obs);
    expect(next.seen).toHaveLength(1);
  });

  it('refuses a token for another audience', async () => {
    const err = await failure(run({ secret: SECRET, audience: 'api' }, bearer(await hs256({ aud: 'billing' }))).obs);
    expect(err.message).toBe('wrong token audience');
  });

  it('refuses a token without exp by default', async () => {
    const token = await new SignJWT({ sub: 'u' }).setProtectedHeader({ alg: 'HS256' }).sign(SECRET_BYTES);
    const err = await failure(run({ secret: SECRET }, bearer(token)).obs);
    expect(err.message).toBe('token lacks required claim exp');
  });

  it('refuses a token without a configured required claim', async () => {
    const err = await failure(run({ secret: SECRET, requiredClaims: ['exp', 'tenant'] }, bearer(await hs256())).obs);
    expect(err.message).toBe('token lacks required claim tenant');
  });

  it('refuses an algorithm outside the configured list', async () => {
    const err = await failure(run({ secret: SECRET, algorithms: ['HS256'] }, bearer(await hs256({}, 'HS512'))).obs);
    expect(err.message).toBe('token algorithm not allowed');
  });
});

describe('jwtAuth on optional and public routes', () => {
  it('lets a request without a token through on an optional route, without claims', async () => {
    const { next, obs } = run({ secret: SECRET, mode: 'optional' }, {});
    expect(await firstValueFrom(obs)).toBe(OK);
    expect(next.seen[0]!.locals.claims).toBeUndefined();
  });

  it('refuses a bad token on an optional route', async () => {
    const err = await failure(run({ secret: SECRET, mode: 'optional' }, bearer(await hs256({ exp: NOW_S - 3600 }))).obs);
    expect(err.status).toBe(401);
  });

  it('admits a good token on an optional route with its claims', async () => {
    const { next, obs } = run({ secret: SECRET, mode: 'optional' }, bearer(await hs256()));
    await firstValueFrom(obs);
    expect(next.seen[0]!.locals.claims?.sub).toBe('user-1');
  });

  it('is the identity on a public route, needing no key', () => {
    const next = upstream();
    expect(jwtAuth({ mode: 'none' })(next)).toBe(next);
  });
});

describe('jwtAuth scopes', () => {
  it('refuses a token lacking a required scope with 403 insufficient_scope', async () => {
    const { next, obs } = run({ secret: SECRET, scopes: ['orders:write'] }, bearer(await hs256({ scope: 'orders:read profile' })));
    const err = await failure(obs);
    expect(err.status).toBe(403);
    expect(err.code).toBe('FORBIDDEN');
    expect(err.message).toBe('token lacks required scope: orders:write');
    expect(err.headers?.['www-authenticate']).toBe(
      'Bearer error="insufficient_scope", error_description="token lacks required scope: orders:write", scope="orders:write"');
    expect(next.seen).toHaveLength(0);
  });

  it('admits a token whose space-separated scope claim has every required scope', async () => {
    const { next, obs } = run({ secret: SECRET, scopes: ['a', 'b'] }, bearer(await hs256({ scope: 'b  c a' })));
    await firstValueFrom(obs);
    expect(next.seen).toHaveLength(1);
  });

  it('reads scopes from an array claim with a configured name', async () => {
    const ok = run({ secret: SECRET, scopes: ['admin'], scopeClaim: 'roles' }, bearer(await hs256({ roles: ['user', 'admin'] })));
    await firstValueFrom(ok.obs);
    expect(ok.next.seen).toHaveLength(1);
    const err = await failure(run({ secret: SECRET, scopes: ['admin'], scopeClaim: 'scp' }, bearer(await hs256({ scp: ['user'] }))).obs);
    expect(err.status).toBe(403);
  });
});

describe('jwtAuth forwarding', () => {
  it('copies configured claims to request headers', async () => {
    const token = await hs256({ tenant: 42, groups: ['a', 'b'] });
    const { next, obs } = run({ secret: SECRET, forwardClaims: { sub: 'X-User-Id', tenant: 'x-tenant', groups: 'x-groups' } }, bearer(token));
    await firstValueFrom(obs);
    expect(next.seen[0]!.headers).toMatchObject({ 'x-user-id': 'user-1', 'x-tenant': '42', 'x-groups': 'a,b' });
  });

  it('removes a client-sent forwarded-claim header so it cannot be forged', async () => {
    const { next, obs } = run({ secret: SECRET, mode: 'optional', forwardClaims: { sub: 'x-user-id' } }, { 'x-user-id': 'admin' });
    await firstValueFrom(obs);
    expect(next.seen[0]!.headers['x-user-id']).toBeUndefined();
  });

  it('does not forward a claim value with a line break', async () => {
    const { next, obs } = run({ secret: SECRET, forwardClaims: { sub: 'x-user-id' } }, bearer(await hs256({ sub: 'a\r\nx-evil: 1' })));
    await firstValueFrom(obs);
    expect(next.seen[0]!.headers['x-user-id']).toBeUndefined();
  });

  it('keeps the authorization header by default', async () => {
    const token = await hs256();
    const { next, obs } = run({ secret: SECRET }, bearer(token));
    await firstValueFrom(obs);
    expect(next.seen[0]!.headers.authorization).toBe(`Bearer ${token}`);
  });

  it('strips the authorization header when asked, and a re-subscription still authenticates', async () => {
    const next = upstream();
    const req = request(bearer(await hs256()));
    const obs = jwtAuth({ clock, secret: SECRET, stripAuthorization: true })(next)(req);
    await firstValueFrom(obs);
    await firstValueFrom(obs); // what a retry around this stage does
    expect(next.seen).toHaveLength(2);
    expect(next.seen.map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
    // The next stage got a copy: the request stays as the client sent it.
    expect(req.headers.authorization).toMatch(/^Bearer /);
    expect(req.locals.claims).toMatchObject({ sub: 'user-1' });
  });
});

describe('jwtAuth as an Observable', () => {
  it('does nothing until subscribed', async () => {
    const next = vi.fn(() => of(OK));
    jwtAuth({ clock, secret: SECRET })(next)(request(bearer(await hs256())));
    await new Promise((r) => setImmediate(r));
    expect(next).not.toHaveBeenCalled();
  });

  it('never calls the next stage when unsubscribed during verification', async () => {
    const next = vi.fn(() => of(OK));
    const sub = jwtAuth({ clock, secret: SECRET })(next)(request(bearer(await hs256()))).subscribe();
    sub.unsubscribe();
    await new Promise((r) => setImmediate(r));
    expect(next).not.toHaveBeenCalled();
  });
});

describe('jwtAuth configuration', () => {
  it('throws TypeError without a key source', () => {
    expect(() => jwtAuth({})).toThrow(TypeError);
  });

  it('throws TypeError with two key sources', () => {
    expect(() => jwtAuth({ secret: SECRET, jwksUrl: 'https://idp.example/jwks' })).toThrow(/exactly one/);
  });

  it('throws TypeError for a secret shorter than 32 bytes', () => {
    expect(() => jwtAuth({ secret: 'short' })).toThrow(/at least 32 bytes/);
  });

  it('throws TypeError for an unknown mode', () => {
    expect(() => jwtAuth({ secret: SECRET, mode: 'maybe' as never })).toThrow(/mode/);
  });

  it('throws TypeError for an HMAC algorithm with a public key', async () => {
    const { publicKey } = await generateKeyPair('ES256');
    const pem = await exportSPKI(publicKey);
    expect(() => jwtAuth({ publicKey: pem, algorithms: ['HS256'] })).toThrow(/cannot be verified/);
  });

  it('throws TypeError for a publicKey that is not PEM', () => {
    expect(() => jwtAuth({ publicKey: 'not a key' })).toThrow(/PEM/);
  });

  it('throws TypeError for a bad forwarded header name', () => {
    expect(() => jwtAuth({ secret: SECRET, forwardClaims: { sub: 'x user' } })).toThrow(/header name/);
  });
});

describe('jwtAuth with a PEM public key', () => {
  const pairs: Record<string, { privateKey: CryptoKey; pem: string }> = {};
  beforeAll(async () => {
    for (const alg of ['RS256', 'ES256', 'EdDSA']) {
      const { privateKey, publicKey } = await generateKeyPair(alg);
      pairs[alg] = { privateKey, pem: await exportSPKI(publicKey) };
    }
  });

  it.each(['RS256', 'ES256', 'EdDSA'])('admits a valid %s token', async (alg) => {
    const token = await new SignJWT({ sub: 'u', exp: NOW_S + 60 }).setProtectedHeader({ alg }).sign(pairs[alg]!.privateKey);
    const { next, obs } = run({ publicKey: pairs[alg]!.pem }, bearer(token));
    await firstValueFrom(obs);
    expect(next.seen[0]!.locals.claims?.sub).toBe('u');
  });

  it('refuses a token signed by another key pair', async () => {
    const token = await new SignJWT({ exp: NOW_S + 60 }).setProtectedHeader({ alg: 'ES256' }).sign(pairs.ES256!.privateKey);
    const err = await failure(run({ publicKey: pairs.RS256!.pem }, bearer(token)).obs);
    expect(err.status).toBe(401);
  });

  it('refuses an HS256 token signed with the public key itself (algorithm confusion)', async () => {
    const pem = pairs.RS256!.pem;
    const token = await hs256({}, 'HS256', new TextEncoder().encode(pem));
    const err = await failure(run({ publicKey: pem }, bearer(token)).obs);
    expect(err.message).toBe('token algorithm not allowed');
  });
});

describe('jwtAuth with a JWKS URL', () => {
  let server: Server | undefined;
  let fetches = 0;
  let jwks: { keys: JWK[] } = { keys: [] };
  const signers: Record<string, CryptoKey> = {};

  beforeAll(async () => {
    for (const kid of ['k1', 'k2']) {
      const { privateKey, publicKey } = await generateKeyPair('ES256');
      signers[kid] = privateKey;
      (signers as Record<string, unknown>)[`${kid}.jwk`] = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    }
  });

  afterEach(async () => {
    const s = server;
    server = undefined;
    if (s === undefined) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  });

  async function serveJwks(...kids: string[]): Promise<string> {
    fetches = 0;
    publish(...kids);
    server = createServer((_, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  function publish(...kids: string[]): void {
    jwks = { keys: kids.map((k) => (signers as Record<string, unknown>)[`${k}.jwk`] as JWK) };
  }

  function token(kid: string): Promise<string> {
    return new SignJWT({ sub: kid, exp: NOW_S + 60 }).setProtectedHeader({ alg: 'ES256', kid }).sign(signers[kid]!);
  }

  it('verifies a token with a key from the JWKS and fetches it once for many tokens', async () => {
    const url = await serveJwks('k1');
    const handler = jwtAuth({ clock, jwksUrl: url })(upstream());
    for (let i = 0; i < 3; i++) await firstValueFrom(handler(request(bearer(await token('k1')))));
    expect(fetches).toBe(1);
  });

  it('refetches the JWKS when a token names an unknown kid', async () => {
    const url = await serveJwks('k1');
    const next = upstream();
    const handler = jwtAuth({ clock, jwksUrl: url, jwks: { cooldown: 0 } })(next);
    await firstValueFrom(handler(request(bearer(await token('k1')))));
    publish('k1', 'k2'); // the issuer rotates in a new key
    await firstValueFrom(handler(request(bearer(await token('k2')))));
    expect(fetches).toBe(2);
    expect(next.seen.map((r) => r.locals.claims?.sub)).toEqual(['k1', 'k2']);
  });

  it('does not refetch within the cooldown, however many unknown kids arrive', async () => {
    const url = await serveJwks('k1');
    const handler = jwtAuth({ clock, jwksUrl: url, jwks: { cooldown: '1h' } })(upstream());
    await firstValueFrom(handler(request(bearer(await token('k1')))));
    publish('k1', 'k2');
    for (let i = 0; i < 5; i++) {
      const err = await failure(handler(request(bearer(await token('k2')))));
      expect(err.message).toBe('no signing key matches the token');
    }
    expect(fetches).toBe(1);
  });

  it('shares one JWKS cache between stages built from the same key source', async () => {
    const url = await serveJwks('k1');
    const keys = keySource({ jwksUrl: url });
    const a = jwtAuth({ clock, keys })(upstream());
    const b = jwtAuth({ clock, keys, mode: 'optional' })(upstream());
    await firstValueFrom(a(request(bearer(await token('k1')))));
    await firstValueFrom(b(request(bearer(await token('k1')))));
    expect(fetches).toBe(1);
  });

  it('answers 503 when the JWKS cannot be fetched', async () => {
    const url = await serveJwks('k1');
    server!.closeAllConnections();
    await new Promise((r) => server!.close(r));
    server = undefined;
    const err = await failure(jwtAuth({ clock, jwksUrl: url })(upstream())(request(bearer(await token('k1')))));
    expect(err.status).toBe(503);
    expect(err.code).toBe('SERVICE_UNAVAILABLE');
  });
});

describe('jwtAuth token cache', () => {
  it('answers a token it verified before synchronously, without a promise tick', async () => {
    const token = await hs256();
    const next = upstream();
    const handler = jwtAuth({ clock, secret: SECRET })(next);
    await firstValueFrom(handler(request(bearer(token))));
    let sync = false;
    handler(request(bearer(token))).subscribe(() => { sync = true; });
    expect(sync).toBe(true);
    expect(next.seen).toHaveLength(2);
  });

  it('still refuses a cached token once it has expired on the injected clock', async () => {
    let now = NOW_S * 1000;
    const moving = { now: () => now };
    const token = await hs256({ exp: NOW_S + 10 });
    const handler = jwtAuth({ clock: moving, secret: SECRET, clockTolerance: 0 })(upstream());
    await firstValueFrom(handler(request(bearer(token))));
    now += 11_000;
    const err = await failure(handler(request(bearer(token))));
    expect(err.status).toBe(401);
  });

  it('does not remember a token that failed verification', async () => {
    const good = await hs256();
    const forged = good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA');
    const handler = jwtAuth({ clock, secret: SECRET })(upstream());
    await firstValueFrom(handler(request(bearer(good))));
    expect((await failure(handler(request(bearer(forged))))).status).toBe(401);
    expect((await failure(handler(request(bearer(forged))))).status).toBe(401);
  });

  it('verifies every time with tokenCache: 0', async () => {
    const token = await hs256();
    const handler = jwtAuth({ clock, secret: SECRET, tokenCache: 0 })(upstream());
    await firstValueFrom(handler(request(bearer(token))));
    let sync = false;
    const sub = handler(request(bearer(token))).subscribe(() => { sync = true; });
    expect(sync).toBe(false);
    sub.unsubscribe();
  });
});
