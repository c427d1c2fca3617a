import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWTPayload } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { type Answer, errorBody, get } from '../support/answer.ts';

/**
 * JWT auth through real gateways built from YAML: the `auth` keys (route
 * shorthand and object, top-level defaults), the key sources (HS256 secret,
 * RS256/ES256 PEM public keys, a JWKS served over HTTP), and what the client
 * and the upstream each see.
 */

const SECRET = 'integration-secret-at-least-32-bytes-long!';
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An upstream that records the headers of every request it gets and answers 200 "ok". */
async function recordingUpstream(): Promise<TestUpstream & { seen: IncomingHttpHeaders[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const up = await startUpstream((req, res) => {
    req.resume();
    seen.push(req.headers);
    res.end('ok');
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { seen });
}

async function gateway(yaml: string): Promise<{ url: string }> {
  const gw = await startGatewayFromYaml(yaml);
  cleanups.push(() => gw.close());
  return gw;
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

async function hs256(claims: JWTPayload, exp: number = nowSeconds() + 3600): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(exp)
    .sign(new TextEncoder().encode(SECRET));
}

async function signed(alg: string, key: CryptoKey, claims: JWTPayload, kid?: string): Promise<string> {
  return new SignJWT(claims).setProtectedHeader(kid === undefined ? { alg } : { alg, kid })
    .setExpirationTime(nowSeconds() + 3600).sign(key);
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

describe('JWT auth from YAML with a shared secret', () => {
  it('lets a valid HS256 token through to the upstream and refuses expired and missing ones with 401', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    auth: { mode: required, secret: "${SECRET}" }
`);
    const good = await hs256({ sub: 'alice' });
    const ok = await get(`${gw.url}/orders/1`, bearer(good));
    expect(ok.status).toBe(200);
    expect(ok.body).toBe('ok');
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]!.authorization).toBe(`Bearer ${good}`);

    const expired = await get(`${gw.url}/orders/1`, bearer(await hs256({ sub: 'alice' }, nowSeconds() - 3600)));
    expect(expired.status).toBe(401);
    expect(expired.headers['www-authenticate']).toBe('Bearer error="invalid_token", error_description="token expired"');
    expect(errorBody(expired)).toEqual({ code: 'UNAUTHORIZED', message: 'token expired' });

    const missing = await get(`${gw.url}/orders/1`);
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="rxgate"');
    expect(errorBody(missing)).toEqual({ code: 'UNAUTHORIZED', message: 'missing bearer token' });

    const forged = await get(`${gw.url}/orders/1`, bearer(await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(nowSeconds() + 3600).sign(new TextEncoder().encode('another-secret-that-is-32-bytes-long!!'))));
    expect(forged.status).toBe(401);
    expect(errorBody(forged)).toEqual({ code: 'UNAUTHORIZED', message: 'bad token signature' });

    expect(up.seen).toHaveLength(1);
  });

  it('applies the route modes over top-level keys: optional passes without a token, none stays public', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
auth: { secret: "${SECRET}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /private/*, service: api, auth: required }
  - { path: /catalog/*, service: api, auth: optional }
  - { path: /public/*, service: api, auth: none }
  - { path: /open/*, service: api }
`);
    expect((await get(`${gw.url}/private/x`)).status).toBe(401);
    expect((await get(`${gw.url}/private/x`, bearer(await hs256({ sub: 'a' })))).status).toBe(200);

    expect((await get(`${gw.url}/catalog/x`)).status).toBe(200);
    expect((await get(`${gw.url}/catalog/x`, bearer(await hs256({ sub: 'a' })))).status).toBe(200);
    const bad = await get(`${gw.url}/catalog/x`, bearer(await hs256({ sub: 'a' }, nowSeconds() - 3600)));
    expect(bad.status).toBe(401);
    expect(errorBody(bad).message).toBe('token expired');

    expect((await get(`${gw.url}/public/x`)).status).toBe(200);
    // `none` skips the stage altogether: even a garbage token is not looked at.
    expect((await get(`${gw.url}/public/x`, { authorization: 'Bearer not-a-jwt' })).status).toBe(200);
    expect((await get(`${gw.url}/open/x`)).status).toBe(200);

    expect(up.seen).toHaveLength(6);
  });

  it('answers 403 with an insufficient_scope challenge when the token lacks a required scope', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
auth: { secret: "${SECRET}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    auth: { mode: required, scopes: ["orders:write"] }
`);
    const denied = await get(`${gw.url}/orders/1`, bearer(await hs256({ sub: 'a', scope: 'orders:read' })));
    expect(denied.status).toBe(403);
    expect(errorBody(denied)).toEqual({ code: 'FORBIDDEN', message: 'token lacks required scope: orders:write' });
    expect(denied.headers['www-authenticate']).toBe(
      'Bearer error="insufficient_scope", error_description="token lacks required scope: orders:write", scope="orders:write"');
    expect(up.seen).toHaveLength(0);

    expect((await get(`${gw.url}/orders/1`, bearer(await hs256({ sub: 'a', scope: 'orders:read orders:write' })))).status).toBe(200);
    expect(up.seen).toHaveLength(1);
  });

  it('forwards claims as upstream headers and drops copies the client sent', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
auth: { secret: "${SECRET}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    auth: { mode: required, forwardClaims: { sub: x-user-id, tenant: X-Tenant-Id } }
  - path: /catalog/*
    service: api
    auth: { mode: optional, forwardClaims: { sub: x-user-id } }
`);
    const token = await hs256({ sub: 'alice', tenant: 'acme' });
    const res = await get(`${gw.url}/orders/1`, { ...bearer(token), 'x-user-id': 'mallory', 'x-tenant-id': 'evil' });
    expect(res.status).toBe(200);
    expect(up.seen[0]!['x-user-id']).toBe('alice');
    expect(up.seen[0]!['x-tenant-id']).toBe('acme');
    expect(up.seen[0]!.authorization).toBe(`Bearer ${token}`);

    // Without a token on an optional route the forged header must not survive either.
    expect((await get(`${gw.url}/catalog/1`, { 'x-user-id': 'mallory' })).status).toBe(200);
    expect(up.seen[1]!['x-user-id']).toBeUndefined();
  });

  it('removes the authorization header before forwarding with stripAuthorization: true', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    auth: { secret: "${SECRET}", stripAuthorization: true, forwardClaims: { sub: x-user-id } }
`);
    expect((await get(`${gw.url}/orders/1`, bearer(await hs256({ sub: 'bob' })))).status).toBe(200);
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]!.authorization).toBeUndefined();
    expect(up.seen[0]!['x-user-id']).toBe('bob');
  });
});

describe('JWT auth from YAML with public keys', () => {
  it.each(['RS256', 'ES256'])('verifies %s tokens against a PEM public key and refuses other keys and algorithms', async (alg) => {
    const { publicKey, privateKey } = await generateKeyPair(alg);
    const other = await generateKeyPair(alg);
    const up = await recordingUpstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    auth:
      mode: required
      publicKey: ${JSON.stringify(await exportSPKI(publicKey))}
      forwardClaims: { sub: x-user-id }
`);
    const ok = await get(`${gw.url}/orders/1`, bearer(await signed(alg, privateKey, { sub: 'carol' })));
    expect(ok.status).toBe(200);
    expect(up.seen[0]!['x-user-id']).toBe('carol');

    const wrongKey = await get(`${gw.url}/orders/1`, bearer(await signed(alg, other.privateKey, { sub: 'carol' })));
    expect(wrongKey.status).toBe(401);
    expect(errorBody(wrongKey).message).toBe('bad token signature');

    // An HS256 token must never be checked with the public key as an HMAC secret.
    const confused = await get(`${gw.url}/orders/1`, bearer(await hs256({ sub: 'carol' })));
    expect(confused.status).toBe(401);
    expect(errorBody(confused).message).toBe('token algorithm not allowed');
    expect(up.seen).toHaveLength(1);
  });

  it('verifies tokens with keys from a JWKS URL set at the top level, with its issuer and audience', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    let fetches = 0;
    const jwks: Server = createServer((req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => {
      jwks.closeAllConnections();
      jwks.close(() => resolve());
    }));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;

    const up = await recordingUpstream();
    const gw = await gateway(`
auth:
  jwksUrl: ${jwksUrl}
  issuer: https://idp.test/
  audience: orders-api
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /orders/*, service: api, auth: required }
  - { path: /admin/*, service: api, auth: { mode: required, scopes: [admin] } }
`);
    const claims = { sub: 'dave', iss: 'https://idp.test/', aud: 'orders-api' };
    const ok = await get(`${gw.url}/orders/1`, bearer(await signed('RS256', privateKey, claims, 'k1')));
    expect(ok.status).toBe(200);
    expect(up.seen).toHaveLength(1);
    expect(fetches).toBeGreaterThanOrEqual(1);

    // The second route inherits the top-level keys, issuer and audience.
    expect((await get(`${gw.url}/admin/1`, bearer(await signed('RS256', privateKey, { ...claims, scope: 'admin' }, 'k1')))).status).toBe(200);
    expect((await get(`${gw.url}/admin/1`, bearer(await signed('RS256', privateKey, claims, 'k1')))).status).toBe(403);

    const wrongAudience = await get(`${gw.url}/orders/1`, bearer(await signed('RS256', privateKey, { ...claims, aud: 'billing' }, 'k1')));
    expect(wrongAudience.status).toBe(401);
    expect(errorBody(wrongAudience).message).toBe('wrong token audience');

    const wrongIssuer = await get(`${gw.url}/orders/1`, bearer(await signed('RS256', privateKey, { ...claims, iss: 'https://evil.test/' }, 'k1')));
    expect(wrongIssuer.status).toBe(401);
    expect(errorBody(wrongIssuer).message).toBe('wrong token issuer');

    const unknownKid = await get(`${gw.url}/orders/1`, bearer(await signed('RS256', privateKey, claims, 'k2')));
    expect(unknownKid.status).toBe(401);
    expect(errorBody(unknownKid).message).toBe('no signing key matches the token');
    expect(unknownKid.headers['www-authenticate']).toMatch(/^Bearer error="invalid_token"/);

    const missing = await get(`${gw.url}/orders/1`);
    expect(missing.status).toBe(401);
    expect(up.seen).toHaveLength(2);
  });

  it('answers 503 when the JWKS cannot be fetched', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve)); // nothing listens there any more
    const up = await recordingUpstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    auth: { jwksUrl: "http://127.0.0.1:${port}/jwks.json", jwks: { timeout: 2s } }
`);
    const res = await get(`${gw.url}/orders/1`, bearer(await signed('RS256', privateKey, { sub: 'e' }, 'k1')));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(errorBody(res)).toEqual({ code: 'SERVICE_UNAVAILABLE', message: 'token signing keys are unavailable' });
    expect(up.seen).toHaveLength(0);
  });
});
