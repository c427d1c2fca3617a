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

async function gateway(auth: string, routeAuth: string): Promise<string> {
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
  - { path: /top/*, service: up, auth: required }
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

  it('does not apply the top-level algorithms to a key of another kind, and does to one of the same kind', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    // HS256 cannot verify with a public key: inherited, it would refuse the config.
    const hsTop = await gateway(`auth: { secret: "${SECRET}", algorithms: [HS256] }`, `      publicKey: ${block(pem(rsa.publicKey), 6)}`);
    expect(await status(`${hsTop}/own/x`, await sign('PS256', rsa.privateKey))).toBe(200);
    const rsTop = await gateway(`auth:\n  algorithms: [RS256]\n  publicKey: ${block(pem(other.publicKey), 2)}`, `      publicKey: ${block(pem(rsa.publicKey), 6)}`);
    expect([await status(`${rsTop}/own/x`, await sign('RS256', rsa.privateKey)), await status(`${rsTop}/own/x`, await sign('PS256', rsa.privateKey))]).toEqual([200, 401]);
  });
});
