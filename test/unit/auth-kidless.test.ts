import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { remoteJwks } from '../../lib/stages/auth/jwks.ts';
import { createVerifier, MAX_UNNAMED_CANDIDATES, type Verifier } from '../../lib/stages/auth/verify.ts';

/**
 * Review R3 (D4): a token without `kid` was tried against every fitting
 * key of the JWKS (500 RSA keys: 136 ms of CPU per forged token). Now
 * against at most MAX_UNNAMED_CANDIDATES keys of a set whose keys have
 * kids; a set with no kid at all is still tried key by key (its issuer
 * cannot name a key in a token).
 */

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
  server = undefined;
});

async function keys(n: number, kids: boolean): Promise<{ privates: CryptoKey[]; set: JWK[] }> {
  const privates: CryptoKey[] = [];
  const set: JWK[] = [];
  for (let i = 0; i < n; i++) {
    const pair = await generateKeyPair('ES256');
    privates.push(pair.privateKey);
    set.push({ ...(await exportJWK(pair.publicKey)), alg: 'ES256', ...(kids ? { kid: `k${i}` } : {}) });
  }
  return { privates, set };
}

async function verifierFor(set: JWK[]): Promise<Verifier> {
  server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: set })));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
  return createVerifier({ kind: 'jwks', key: remoteJwks(url), algorithms: ['ES256'] }, {
    algorithms: ['ES256'], issuer: undefined, audience: undefined, clockSkewSeconds: 30, requiredClaims: ['exp'], clock: { now: () => Date.now() }, cacheSize: 0,
  });
}

const sign = (key: CryptoKey): Promise<string> => new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('10m').sign(key);

async function outcome(verify: Verifier, token: string): Promise<string> {
  try {
    return `ok ${String((await verify(token))['sub'])}`;
  } catch (err) {
    return `${(err as { status: number }).status} ${(err as Error).message}`;
  }
}

describe('a token without kid against a JWKS with several fitting keys', () => {
  it(`tries each key when at most ${MAX_UNNAMED_CANDIDATES} fit`, async () => {
    const { privates, set } = await keys(MAX_UNNAMED_CANDIDATES, true);
    const verify = await verifierFor(set);
    expect(await outcome(verify, await sign(privates.at(-1)!))).toBe('ok x');
    expect(await outcome(verify, await sign((await generateKeyPair('ES256')).privateKey))).toBe('401 bad token signature');
  });

  it(`refuses it untried when more than ${MAX_UNNAMED_CANDIDATES} keys with kids fit, even one it would verify with`, async () => {
    const { privates, set } = await keys(MAX_UNNAMED_CANDIDATES + 1, true);
    const verify = await verifierFor(set);
    const refused = `401 token names no key (kid) and more than ${MAX_UNNAMED_CANDIDATES} signing keys fit it`;
    expect(await outcome(verify, await sign(privates[0]!))).toBe(refused);
    expect(await outcome(verify, await sign((await generateKeyPair('ES256')).privateKey))).toBe(refused);
    // A token naming its key is verified as ever.
    const named = await new SignJWT({ sub: 'y' }).setProtectedHeader({ alg: 'ES256', kid: 'k3' }).setExpirationTime('10m').sign(privates[3]!);
    expect(await outcome(verify, named)).toBe('ok y');
  });

  it('still tries every key of a set in which no key has a kid', async () => {
    const { privates, set } = await keys(MAX_UNNAMED_CANDIDATES + 2, false);
    const verify = await verifierFor(set);
    expect(await outcome(verify, await sign(privates.at(-1)!))).toBe('ok x');
  });

  it('verifies it against the keys without a kid of a set that mixes both, and only those (review R4)', async () => {
    const named = await keys(MAX_UNNAMED_CANDIDATES + 1, true);
    const bare = await keys(2, false);
    const verify = await verifierFor([...named.set, ...bare.set]);
    expect(await outcome(verify, await sign(bare.privates[1]!))).toBe('ok x');
    // A key with a kid is not tried for a token without one: its issuer names it.
    expect(await outcome(verify, await sign(named.privates[0]!))).toBe('401 bad token signature');
  });
});
