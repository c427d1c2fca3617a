import { generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { firstValueFrom, lastValueFrom, of, type Observable } from 'rxjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { isGatewayError } from '../../lib/errors.ts';
import { jwtAuth } from '../../lib/stages/auth/jwt-auth.ts';
import type { KeySource } from '../../lib/stages/auth/keys.ts';
import type { GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

const NOW_S = 1_700_000_000;
const OK: GatewayResponse = { status: 200, headers: [], body: null };
const answer: Handler = () => of(OK);

let pair: { publicKey: CryptoKey; privateKey: CryptoKey };
let other: { publicKey: CryptoKey; privateKey: CryptoKey };
beforeAll(async () => {
  pair = await generateKeyPair('RS256');
  other = await generateKeyPair('RS256');
});

/** A JWKS-like key source that counts the signature checks (jose asks it for the key once per check). */
function countingKeys(key: () => CryptoKey): KeySource & { checks: number } {
  const source = {
    kind: 'jwks' as const,
    algorithms: ['RS256'],
    checks: 0,
    key: async () => {
      source.checks++;
      return key();
    },
  };
  return source;
}

async function token(privateKey: CryptoKey): Promise<string> {
  return new SignJWT({ sub: 'client' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime(NOW_S + 3600).sign(privateKey);
}

/** Subscribes every request at once, as requests in flight on many connections do, and collects each outcome. */
function together(obs: Array<Observable<GatewayResponse>>): Promise<unknown[]> {
  return Promise.all(obs.map((o) => lastValueFrom(o).then((res) => res.status, (err: unknown) => err)));
}

describe("a busy client's cached token after its cache entry expires", () => {
  it('is checked once for all its requests in flight, not once per request', async () => {
    let now = NOW_S * 1000;
    const keys = countingKeys(() => pair.publicKey);
    const handler = jwtAuth({ keys, clock: { now: () => now }, tokenCacheTtl: '60s' })(answer);
    const headers = { authorization: `Bearer ${await token(pair.privateKey)}` };
    await firstValueFrom(handler(gatewayRequest({ headers })));
    expect(keys.checks).toBe(1);
    now += 61_000;
    const outcomes = await together(Array.from({ length: 20 }, () => handler(gatewayRequest({ headers }))));
    expect(outcomes).toEqual(Array(20).fill(200));
    expect(keys.checks).toBe(2);
    // Remembered again: the next request needs no check.
    await firstValueFrom(handler(gatewayRequest({ headers })));
    expect(keys.checks).toBe(2);
  });

  it('refuses each request with an error of its own when the check fails (a key rotated away meanwhile)', async () => {
    let now = NOW_S * 1000;
    let current = pair.publicKey;
    const keys = countingKeys(() => current);
    const handler = jwtAuth({ keys, clock: { now: () => now } })(answer);
    const headers = { authorization: `Bearer ${await token(pair.privateKey)}` };
    await firstValueFrom(handler(gatewayRequest({ headers })));
    now += 61_000;
    current = other.publicKey;
    const outcomes = await together(Array.from({ length: 5 }, () => handler(gatewayRequest({ headers }))));
    for (const err of outcomes) {
      expect(isGatewayError(err) && err.status).toBe(401);
    }
    expect(new Set(outcomes).size).toBe(5);
  });
});
