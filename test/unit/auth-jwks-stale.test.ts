import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { remoteJwks } from '../../lib/stages/auth/jwks.ts';
import { createVerifier } from '../../lib/stages/auth/verify.ts';

/**
 * jwks.staleMaxAge (review R3): 7fd1f57 kept the keys fetched for as long
 * as refetches failed, with no end, so a key the issuer withdrew during an
 * outage verified for as long as the outage lasted. Now for staleMaxAge
 * past cacheMaxAge at most; then tokens get 503 until a fetch succeeds.
 * The resolver's clock is injected: no waiting.
 */

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
  server = undefined;
});

describe('JWKS keys kept while refetches fail', () => {
  it('are used until staleMaxAge past cacheMaxAge, then tokens get 503 until the IdP answers', async () => {
    const pair = await generateKeyPair('ES256');
    const set = { keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'ES256', kid: 'a' }] };
    let up = true;
    let fetches = 0;
    server = createServer((_req, res) => {
      fetches++;
      if (up) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(set));
      else res.writeHead(503).end();
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    let t = 0;
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    const keys = remoteJwks(url, { cacheMaxAge: '10m', staleMaxAge: '1h' }, () => t);
    const verify = createVerifier({ kind: 'jwks', key: keys, algorithms: ['ES256'] }, {
      algorithms: ['ES256'], issuer: undefined, audience: undefined, clockSkewSeconds: 30, requiredClaims: ['exp'], clock: { now: () => Date.now() }, cacheSize: 0,
    });
    const token = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'ES256', kid: 'a' }).setExpirationTime('10m').sign(pair.privateKey);
    const outcome = async (): Promise<string> => {
      try {
        return `ok ${String((await verify(token))['sub'])}`;
      } catch (err) {
        return String((err as { status: number }).status);
      }
    };
    expect(await outcome()).toBe('ok x');
    up = false;
    t = 10 * 60_000; // cacheMaxAge: the refetch fails, the keys stay
    expect(await outcome()).toBe('ok x');
    t = 10 * 60_000 + 3_600_000 - 1; // just inside staleMaxAge
    expect(await outcome()).toBe('ok x');
    t = 10 * 60_000 + 3_600_000; // past it: the keys are not used, the refetch's failure is a 503
    expect(await outcome()).toBe('503');
    t += 2000;
    expect(await outcome()).toBe('503');
    expect(fetches).toBeGreaterThan(3);
    up = true;
    t += 1000; // past the 1 s pause after a failed fetch
    expect(await outcome()).toBe('ok x');
    t += 5 * 60_000; // fresh keys again
    up = false;
    expect(await outcome()).toBe('ok x');
  });
});
