import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { type Answer, get } from '../support/answer.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * A route that names its own key source (`secret`, `publicKey`, `jwksUrl`)
 * under a top-level `auth` that names another: the route's replaces the
 * top-level one (docs/auth.md). It used to be merged with it and refused at
 * startup: "expected exactly one of secret, publicKey, jwksUrl; got secret,
 * publicKey" (second black-box audit, notes/s6/audit.md 4b).
 */

const SECRET = 'auth-route-keys-secret-of-at-least-32-bytes';
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function pem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

/** The PEM as a YAML block scalar under a key indented by `indent` spaces. */
function block(text: string, indent: number): string {
  return `|\n${text.trim().split('\n').map((line) => `${' '.repeat(indent + 2)}${line}`).join('\n')}`;
}

function sign(alg: string, key: KeyObject | Uint8Array): Promise<string> {
  return new SignJWT({ sub: 'a' }).setProtectedHeader({ alg }).setExpirationTime('10m').sign(key);
}

/** `withTop`: a route /top/* on the top-level keys (a top level that names no key has none). */
async function gateway(auth: string, routeAuth: string, withTop = true): Promise<string> {
  const up = await startUpstream((req, res) => {
    req.resume();
    res.end('ok');
  });
  cleanups.push(() => up.close());
  const gw = await startGatewayFromYaml(`
${auth}
services:
  up: { upstreams: ["${up.url}"] }
routes:
${withTop ? '  - { path: /top/*, service: up, auth: required }' : ''}
  - path: /own/*
    service: up
    auth:
      mode: required
${routeAuth}
`);
  cleanups.push(() => gw.close());
  return gw.url;
}

const status = async (url: string, jwt: string): Promise<number> => {
  const res: Answer = await get(url, { authorization: `Bearer ${jwt}` });
  return res.status;
};

describe('a route with its own key source under a top-level auth with another', () => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const secret = new TextEncoder().encode(SECRET);

  it('verifies the route with its own public key and the other routes with the top-level secret', async () => {
    const url = await gateway(`auth: { secret: "${SECRET}" }`, `      publicKey: ${block(pem(rsa.publicKey), 6)}`);
    const rs = await sign('RS256', rsa.privateKey);
    const hs = await sign('HS256', secret);
    expect([await status(`${url}/own/x`, rs), await status(`${url}/own/x`, hs)]).toEqual([200, 401]);
    expect([await status(`${url}/top/x`, hs), await status(`${url}/top/x`, rs)]).toEqual([200, 401]);
  });

  it('does not apply the top-level algorithms to a key of another kind', async () => {
    // HS256 cannot verify with a public key: inherited, it would refuse the config.
    const hsTop = await gateway(`auth: { secret: "${SECRET}", algorithms: [HS256] }`, `      publicKey: ${block(pem(rsa.publicKey), 6)}`);
    expect(await status(`${hsTop}/own/x`, await sign('PS256', rsa.privateKey))).toBe(200);
  });

  it('a route with its own EC key under a top-level RSA key with algorithms [RS256] accepts ES256 tokens', async () => {
    // Review R3, finding 3: both are "a public key", so RS256 was inherited and every ES256 token was 401.
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const url = await gateway(`auth:\n  algorithms: [RS256]\n  publicKey: ${block(pem(rsa.publicKey), 2)}`, `      publicKey: ${block(pem(ec.publicKey), 6)}`);
    expect(await status(`${url}/own/x`, await sign('ES256', ec.privateKey))).toBe(200);
    expect(await status(`${url}/top/x`, await sign('RS256', rsa.privateKey))).toBe(200);
    expect(await status(`${url}/top/x`, await sign('PS256', rsa.privateKey))).toBe(401);
  });

  it('a route with its own key keeps the algorithms it names, and those of a top level that names no key', async () => {
    const own = await gateway(`auth: { secret: "${SECRET}" }`, `      algorithms: [RS256]\n      publicKey: ${block(pem(rsa.publicKey), 6)}`);
    expect([await status(`${own}/own/x`, await sign('RS256', rsa.privateKey)), await status(`${own}/own/x`, await sign('PS256', rsa.privateKey))]).toEqual([200, 401]);
    const keyless = await gateway('auth: { algorithms: [RS256] }', `      publicKey: ${block(pem(rsa.publicKey), 6)}`, false);
    expect([await status(`${keyless}/own/x`, await sign('RS256', rsa.privateKey)), await status(`${keyless}/own/x`, await sign('PS256', rsa.privateKey))]).toEqual([200, 401]);
  });
});
