import { generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { lastValueFrom, of } from 'rxjs';
import { expect, it, vi } from 'vitest';
import { jwtAuth } from '../../lib/stages/auth/jwt-auth.ts';
import type { GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

const NOW_S = 1_700_000_000;
const OK: GatewayResponse = { status: 200, headers: [], body: null };
const answer: Handler = () => of(OK);
const outcome = (o: ReturnType<Handler>) => lastValueFrom(o).then((r) => r.status, (e: { status?: number }) => e.status ?? e);

it('a request that arrives after its token expired is not admitted on a check that started before', async () => {
  const pair = await generateKeyPair('RS256');
  let release!: () => void;
  let gate: Promise<void> = Promise.resolve();
  let lookups = 0;
  const keys = { kind: 'jwks' as const, algorithms: ['RS256'], key: async (): Promise<CryptoKey> => { lookups++; await gate; return pair.publicKey; } };
  let now = NOW_S * 1000;
  const handler = jwtAuth({ keys, clock: { now: () => now }, tokenCacheTtl: '60s', clockTolerance: '0s' })(answer);
  // exp 62 s from now: the first check's cache entry lasts 60 s (ttl)
  const tok = await new SignJWT({ sub: 'c' }).setProtectedHeader({ alg: 'RS256' }).setExpirationTime(NOW_S + 62).sign(pair.privateKey);
  const headers = { authorization: `Bearer ${tok}` };
  expect(await outcome(handler(gatewayRequest({ headers })))).toBe(200);
  now += 61_000; // entry expired, token still valid
  gate = new Promise<void>((r) => { release = r; }); // the key lookup (a JWKS refetch) takes a while
  const a = outcome(handler(gatewayRequest({ headers })));
  await vi.waitFor(() => expect(lookups).toBe(2)); // A's check is in its (slow) key lookup
  now += 5_000; // the token is now 4 s past exp (tolerance 0)
  const b = outcome(handler(gatewayRequest({ headers })));
  release();
  expect(await a).toBe(200);
  expect(await b).toBe(401); // admitted (200) on A's check since bd7d8c8
});
