import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/global-setup.ts';
import { redisUrl } from '../support/redis.ts';
import { rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * The third black-box audit (notes/s7/A2-findings.md): rxgate started as
 * users start it (the CLI on a YAML file) and probed on its policies, the
 * way users of nginx, Envoy, Traefik or Kong would: JWT bearer auth against
 * a JWKS endpoint that comes and goes, rate-limit answers and keys (memory,
 * Redis, two instances on one Redis, a Redis that is not there), the IP
 * filter behind trusted and untrusted peers (127.0.0.2 plays a trusted
 * load balancer, 127.0.0.3 a stranger), balancing around a dead instance,
 * the breaker, hedging and mirroring, and config errors.
 */

const SECRET = 'blackbox-policy-secret-of-at-least-32-bytes';
const rsaA = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaB = generateKeyPairSync('rsa', { modulusLength: 2048 });

let runs: RxgateRuns;
/** Echoes what it got as JSON; counts requests by path. */
let upstream: Server;
let upPort = 0;
const hits = new Map<string, number>();
const seen = new Map<string, IncomingMessage['headers']>();
/** The identity provider: serves `jwks` at /jwks.json while `idpUp`; counts fetches. */
let idp: Server;
let idpPort = 0;
let idpUp = false;
let jwks: { keys: JWK[] } = { keys: [] };
let jwksFetches = 0;
let gw = '';
let gwPort = 0;

function answer(req: IncomingMessage, res: ServerResponse): void {
  const u = new URL(req.url!, 'http://upstream');
  hits.set(u.pathname, (hits.get(u.pathname) ?? 0) + 1);
  seen.set(u.pathname, req.headers);
  const status = Number(u.searchParams.get('status') ?? 200);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
}

async function listen(server: Server | TcpServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function close(server: Server | undefined): Promise<void> {
  if (server === undefined) return;
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(req, res));
  });
  upPort = await listen(upstream);
  idp = createServer((req, res) => {
    jwksFetches++;
    if (!idpUp) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks));
  });
  idpPort = await listen(idp);
  runs = rxgateRuns();
  const gateway = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
trustedProxies: [127.0.0.2/32]
auth: { secret: "${SECRET}", audience: api, issuer: "https://idp.example/" }
services:
  up: { upstreams: ["http://127.0.0.1:${upPort}"], retry: false }
routes:
  - { path: /hs/*, service: up, auth: required }
  - { path: /claims/*, service: up, auth: { mode: optional, forwardClaims: { sub: x-user-id, tenant: x-tenant } } }
  - { path: /rl/*, service: up, rateLimit: { limit: 3, window: 1m } }
  - { path: /rlburst/*, service: up, rateLimit: { limit: 60, window: 1m, burst: 2 } }
  - { path: /rlkey/*, service: up, rateLimit: { limit: 1, window: 1m, key: { header: x-api-key } } }
  - { path: /deny/*, service: up, ipFilter: { deny: [127.0.0.3/32, 10.9.9.9] } }
  - { path: /allow-mapped/*, service: up, ipFilter: { allow: ["::ffff:127.0.0.1"] } }
`)], { RXGATE_LOG_LEVEL: 'info' });
  gwPort = Number((await gateway.logged('rxgate listening'))['port']);
  gw = `http://127.0.0.1:${gwPort}`;
}, 30_000);

afterAll(async () => {
  runs?.remove();
  await close(upstream);
  await close(idp);
});

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

const agents = new Map<string, Agent>();
/** A request from `from` (a loopback source address) when given. */
async function get(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {}): Promise<Answer> {
  const { from, ...rest } = init;
  let dispatcher: Agent | undefined;
  if (from !== undefined) {
    dispatcher = agents.get(from) ?? new Agent({ connect: { localAddress: from } });
    agents.set(from, dispatcher);
  }
  const res = await request(url.startsWith('http') ? url : gw + url, { ...rest, ...(dispatcher ? { dispatcher } : {}) } as Parameters<typeof request>[1]);
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

function code(body: string): string {
  return (JSON.parse(body) as { error: { code: string } }).error.code;
}

function hs(claims: Record<string, unknown>, exp: number | null = 600): Promise<string> {
  let jwt = new SignJWT({ iss: 'https://idp.example/', aud: 'api', sub: 'alice', ...claims }).setProtectedHeader({ alg: 'HS256' });
  if (exp !== null) jwt = jwt.setExpirationTime(Math.floor(Date.now() / 1000) + exp);
  return jwt.sign(new TextEncoder().encode(SECRET));
}

function rs(key: KeyObject, header: { kid?: string } = {}, claims: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ sub: 'bob', jti: String(Math.random()), ...claims }).setProtectedHeader({ alg: 'RS256', ...header })
    .setExpirationTime('10m').sign(key);
}

async function jwk(key: KeyObject, kid?: string): Promise<JWK> {
  return { ...(await exportJWK(key)), alg: 'RS256', use: 'sig', ...(kid === undefined ? {} : { kid }) };
}

describe('JWT bearer auth (RFC 6750, RFC 7519)', () => {
  it('checks exp and nbf with the documented 30 s leeway', async () => {
    const now = Math.floor(Date.now() / 1000);
    const ok = async (claims: Record<string, unknown>): Promise<number> =>
      (await get('/hs/x', { headers: { authorization: `Bearer ${await hs(claims, null)}` } })).status;
    expect(await ok({ exp: now - 10 })).toBe(200);
    expect(await ok({ exp: now - 60 })).toBe(401);
    expect(await ok({ exp: now + 600, nbf: now + 10 })).toBe(200);
    expect(await ok({ exp: now + 600, nbf: now + 60 })).toBe(401);
  });

  it('accepts an aud array that names the audience, and refuses one that does not', async () => {
    const status = async (aud: unknown): Promise<number> =>
      (await get('/hs/x', { headers: { authorization: `Bearer ${await hs({ aud })}` } })).status;
    expect(await status(['other', 'api'])).toBe(200);
    expect(await status(['other'])).toBe(401);
    expect(await status('apix')).toBe(401);
  });

  it('answers 401 invalid_token, never a 500, to malformed tokens', async () => {
    const good = await hs({});
    const [h, p, s] = good.split('.') as [string, string, string];
    const cases = [
      `${good}.extra`, `${h}.${p}`, `${h}..${s}`, `!!!.${p}.${s}`, `${Buffer.from('not json').toString('base64url')}.${p}.${s}`,
      `${h}.${Buffer.from('[1,2]').toString('base64url')}.${s}`, `${h}.${p}.${s}x`, `${h}.${'A'.repeat(3000)}.${s}`,
    ];
    for (const token of cases) {
      const res = await get('/hs/x', { headers: { authorization: `Bearer ${token}` } });
      expect([res.status, code(res.body)], token.slice(0, 40)).toEqual([401, 'UNAUTHORIZED']);
      expect(String(res.headers['www-authenticate']), token.slice(0, 40)).toMatch(/^Bearer error="invalid_token"/);
    }
  });

  it('removes client-sent copies of forwarded claim headers, with or without a token, in any case', async () => {
    await get('/claims/none', { headers: { 'X-User-Id': 'admin', 'x-tenant': 'evil' } });
    expect([seen.get('/claims/none')!['x-user-id'], seen.get('/claims/none')!['x-tenant']]).toEqual([undefined, undefined]);
    await get('/claims/some', { headers: { authorization: `Bearer ${await hs({ sub: 'carol' })}`, 'x-user-id': 'admin', 'x-tenant': 'evil' } });
    expect([seen.get('/claims/some')!['x-user-id'], seen.get('/claims/some')!['x-tenant']]).toEqual(['carol', undefined]);
  });
});

describe('JWKS (keys fetched from the identity provider)', () => {
  let proc: RxgateProcess;
  let base = '';
  beforeAll(async () => {
    proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
auth: { jwksUrl: "http://127.0.0.1:${idpPort}/jwks.json", jwks: { cooldown: 30s, cacheMaxAge: 400ms, timeout: 1s }, tokenCache: 0 }
services:
  up: { upstreams: ["http://127.0.0.1:${upPort}"], retry: false }
routes:
  - { path: /j/*, service: up, auth: required }
`)], { RXGATE_LOG_LEVEL: 'info' });
    base = `http://127.0.0.1:${Number((await proc.logged('rxgate listening'))['port'])}`;
  }, 30_000);

  it('answers 503 with Retry-After while the IdP is down, without one fetch per request; then verifies once it is up', async () => {
    idpUp = false;
    jwksFetches = 0;
    jwks = { keys: [await jwk(rsaA.publicKey, 'a')] };
    const token = await rs(rsaA.privateKey, { kid: 'a' });
    for (let i = 0; i < 20; i++) {
      const res = await get(`${base}/j/x`, { headers: { authorization: `Bearer ${token}` } });
      expect([res.status, code(res.body)]).toEqual([503, 'SERVICE_UNAVAILABLE']);
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    expect(jwksFetches).toBeLessThanOrEqual(3);
    idpUp = true;
    await until(async () => (await get(`${base}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey, { kid: 'a' })}` } })).status === 200, { timeout: 5000, interval: 100 });
  });

  it('refetches for unknown kids at most once per cooldown, so made-up kids cannot flood the IdP', async () => {
    idpUp = true;
    jwks = { keys: [await jwk(rsaA.publicKey, 'a')] };
    expect((await get(`${base}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey, { kid: 'a' })}` } })).status).toBe(200);
    jwksFetches = 0;
    for (let i = 0; i < 20; i++) {
      const res = await get(`${base}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaB.privateKey, { kid: `made-up-${i}` })}` } });
      expect(res.status).toBe(401);
    }
    // The keys expire every 400 ms here (cacheMaxAge), so a slow machine may also refetch for that.
    expect(jwksFetches).toBeLessThanOrEqual(3);
  });

  it('keeps verifying with the keys it has when a refetch fails after cacheMaxAge (the IdP down for a while)', async () => {
    idpUp = true;
    jwks = { keys: [await jwk(rsaA.publicKey, 'a')] };
    expect((await get(`${base}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey, { kid: 'a' })}` } })).status).toBe(200);
    idpUp = false;
    const fetched = jwksFetches;
    await new Promise((r) => setTimeout(r, 500)); // past cacheMaxAge (400 ms)
    const res = await get(`${base}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey, { kid: 'a' })}` } });
    expect(jwksFetches).toBeGreaterThan(fetched);
    expect(res.status).toBe(200);
    idpUp = true;
  });

  it('tries every key of the set for a token without kid (a set with two RSA keys, mid-rotation)', async () => {
    idpUp = true;
    jwks = { keys: [await jwk(rsaA.publicKey), await jwk(rsaB.publicKey)] };
    // Past cacheMaxAge (400 ms) the set is fetched again; B's token verifies once it has been.
    await until(async () => (await get(`${base}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaB.privateKey)}` } })).status === 200, { timeout: 5000, interval: 100 });
    expect((await get(`${base}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey)}` } })).status).toBe(200);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const res = await get(`${base}/j/x`, { headers: { authorization: `Bearer ${await rs(other.privateKey)}` } });
    expect(res.status).toBe(401);
  });
});
