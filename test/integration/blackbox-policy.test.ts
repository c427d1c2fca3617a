import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { sendFrom, type FromInit } from '../support/from-address.ts';
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

/** An upstream instance that says who it is; `mode` decides how it answers. */
interface Instance { server: Server; url: string; name: string; got: string[]; mode: 'ok' | 'reset' | 'slow' | 'sick' | 'busy-once' | 'fail' }
async function instance(name: string): Promise<Instance> {
  const inst: Instance = { server: createServer(), url: '', name, got: [], mode: 'ok' };
  inst.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => {
      if (req.url === '/health') {
        res.writeHead(inst.mode === 'sick' || inst.mode === 'reset' ? 503 : 200).end();
        return;
      }
      inst.got.push(`${req.method} ${req.url} ${body}`);
      if (inst.mode === 'busy-once') {
        inst.mode = 'ok';
        res.writeHead(503, { 'retry-after': '3600' }).end('busy');
      } else if (inst.mode === 'fail') res.writeHead(503).end(name);
      else if (inst.mode === 'reset') req.socket.destroy();
      else if (inst.mode === 'slow') setTimeout(() => res.writeHead(200).end(name), 400);
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
    });
  });
  inst.url = `http://127.0.0.1:${await listen(inst.server)}`;
  return inst;
}

// The gateways of the describe blocks below start together, in the first beforeAll: a gateway process
// takes seconds to start on a loaded machine, and one after another they made most of this file's time.
let jwksBase = '';
/** A gateway verifying tokens with the IdP's JWKS (cacheMaxAge 400 ms, no token cache). */
async function startJwksGateway(): Promise<void> {
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
auth: { jwksUrl: "http://127.0.0.1:${idpPort}/jwks.json", jwks: { cooldown: 30s, cacheMaxAge: 400ms, timeout: 1s }, tokenCache: 0 }
services:
  up: { upstreams: ["http://127.0.0.1:${upPort}"], retry: false }
routes:
  - { path: /j/*, service: up, auth: required }
`)], { RXGATE_LOG_LEVEL: 'info' });
  jwksBase = `http://127.0.0.1:${Number((await proc.logged('rxgate listening'))['port'])}`;
}

const balInstances: Instance[] = [];
let balBase = '';
let dead = '';
let a: Instance, b: Instance, c: Instance, shadow: Instance, h1: Instance, h2: Instance;
/** A gateway balancing over instances that can be told to fail, reset, be slow or sick. */
async function startBalancingGateway(): Promise<void> {
  [a, b, c, shadow, h1, h2] = await Promise.all(['a', 'b', 'c', 'shadow', 'h1', 'h2'].map(instance)) as [Instance, Instance, Instance, Instance, Instance, Instance];
  balInstances.push(a, b, c, shadow, h1, h2);
  dead = `http://127.0.0.1:${await freePort()}`;
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  rr: { upstreams: ["${a.url}", "${b.url}", "${c.url}"], balancer: round-robin }
  withdead: { upstreams: ["${dead}", "${a.url}"], balancer: round-robin }
  resets: { upstreams: ["${b.url}", "${c.url}"], balancer: round-robin }
  lone: { upstreams: ["${dead}"], ejectFor: 0 }
  checked: { upstreams: ["${h1.url}", "${h2.url}"], balancer: round-robin, health: { path: /health, interval: 100ms, unhealthyAfter: 1, healthyAfter: 1 } }
  hedged: { upstreams: ["${h1.url}", "${h2.url}"], balancer: round-robin }
  shadow: { upstreams: ["${shadow.url}"] }
routes:
  - { path: /rr/*, service: rr }
  - { path: /withdead/*, service: withdead }
  - { path: /resets/*, service: resets }
  - { path: /lone/*, service: lone }
  - { path: /checked/*, service: checked }
  - { path: /hedged/*, service: hedged, hedge: { after: 100ms, max: 1 } }
  - { path: /mirrored/*, service: rr, mirror: { service: shadow, percent: 100 } }
`)], { RXGATE_LOG_LEVEL: 'info' });
  balBase = `http://127.0.0.1:${Number((await proc.logged('rxgate listening'))['port'])}`;
}

const healthInstances: Instance[] = [];
let healthBase = '';
let p1: Instance, p2: Instance, p3: Instance, f: Instance, r: Instance, k1: Instance, k2: Instance, e1: Instance, e2: Instance;
/** A gateway with health checks, panic on and off, a quick breaker, Retry-After, hashing and 5xx ejection. */
async function startHealthGateway(): Promise<void> {
  [p1, p2, p3, f, r, k1, k2, e1, e2] = await Promise.all(['p1', 'p2', 'p3', 'f', 'r', 'k1', 'k2', 'e1', 'e2'].map(instance)) as [Instance, Instance, Instance, Instance, Instance, Instance, Instance, Instance, Instance];
  healthInstances.push(p1, p2, p3, f, r, k1, k2, e1, e2);
  p1.mode = 'sick';
  p2.mode = 'sick';
  p3.mode = 'sick';
  const health = 'health: { path: /health, interval: 100ms, unhealthyAfter: 1, healthyAfter: 1 }';
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  panicky: { upstreams: ["${p1.url}", "${p2.url}"], ${health} }
  strict: { upstreams: ["${p3.url}"], panic: false, ${health} }
  flaky: { upstreams: ["${f.url}"], retry: false, ejectFor: 0, circuitBreaker: { consecutiveFailures: 2, resetTimeout: 300ms } }
  busy: { upstreams: ["${r.url}"], retry: { attempts: 2, statuses: [503], cap: 200ms } }
  sticky: { upstreams: ["${k1.url}", "${k2.url}"], balancer: hash, hash: { header: x-user } }
  ejecting: { upstreams: ["${e1.url}", "${e2.url}"], balancer: round-robin, ejectOnStatuses: [503], retry: false, circuitBreaker: false }
  keeping: { upstreams: ["${e1.url}", "${e2.url}"], balancer: round-robin, retry: false, circuitBreaker: false }
routes:
  - { path: /ejecting/*, service: ejecting }
  - { path: /keeping/*, service: keeping }
  - { path: /panicky/*, service: panicky }
  - { path: /strict/*, service: strict }
  - { path: /flaky/*, service: flaky }
  - { path: /busy/*, service: busy }
  - { path: /sticky/*, service: sticky }
`)], { RXGATE_LOG_LEVEL: 'info' });
  healthBase = `http://127.0.0.1:${Number((await proc.logged('rxgate listening'))['port'])}`;
}

/** Two gateways on the test run's Redis, and one on a Redis that is not there (it waits for it at start). */
let redisShared: Array<Promise<string>> = [];
let redisDown: Promise<{ proc: RxgateProcess; base: string; admin: string }> | undefined;
function startRedisGateways(): void {
  const config = (redis: string, admin = ''): string => `
listen: { host: 127.0.0.1, port: 0 }
${admin}
redis: { url: "${redis}" }
services:
  up: { upstreams: ["http://127.0.0.1:${upPort}"], retry: false }
routes:
  - { path: /shared/*, service: up, rateLimit: { limit: 3, window: 1m, store: redis, id: "shared-${process.pid}" } }
  - { path: /mem/*, service: up, rateLimit: { limit: 3, window: 1m } }
  - { path: /closed/*, service: up, rateLimit: { limit: 3, window: 1m, store: redis, failOpen: false } }
`;
  const started = async (proc: RxgateProcess): Promise<string> => `http://127.0.0.1:${Number((await proc.logged('rxgate listening'))['port'])}`;
  const file = runs.file(config(redisUrl()));
  redisShared = [started(runs.start(['--config', file])), started(runs.start(['--config', file]))];
  redisDown = (async () => {
    const [adminPort, nowhere] = [await freePort(), await freePort()];
    const proc = runs.start(['--config', runs.file(config(`redis://127.0.0.1:${nowhere}`, `admin: { host: 127.0.0.1, port: ${adminPort} }`))], { RXGATE_LOG_LEVEL: 'info' });
    return { proc, base: await started(proc), admin: `http://127.0.0.1:${adminPort}` };
  })();
  // Awaited by their tests; a failure before then is theirs to report.
  for (const p of [...redisShared, redisDown]) p.catch(() => undefined);
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
  if (redisUrl() !== '') startRedisGateways();
  const others = Promise.all([startJwksGateway(), startBalancingGateway(), startHealthGateway()]);
  const gateway = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
trustedProxies: [127.0.0.2/32]
auth: { secret: "${SECRET}", audience: api, issuer: "https://idp.example/", forwardClaims: { sub: x-user-id } }
services:
  up: { upstreams: ["http://127.0.0.1:${upPort}"], retry: false }
routes:
  - { path: /hs/*, service: up, auth: required }
  - { path: /pub/*, service: up, auth: none }
  - { path: /open/*, service: up }
  - { path: /claims/*, service: up, auth: { mode: optional, forwardClaims: { sub: x-user-id, tenant: x-tenant } } }
  - { path: /rl/*, service: up, rateLimit: { limit: 3, window: 1m } }
  - { path: /rlburst/*, service: up, rateLimit: { limit: 60, window: 1m, burst: 2 } }
  - { path: /rlkey/*, service: up, rateLimit: { limit: 1, window: 1m, key: { header: x-api-key } } }
  - { path: /rlsub/*, service: up, auth: required, rateLimit: { limit: 1, window: 1m, key: { claim: sub } } }
  - { path: /deny/*, service: up, ipFilter: { deny: [127.0.0.3/32, 10.9.9.9] } }
  - { path: /allow-mapped/*, service: up, ipFilter: { allow: ["::ffff:127.0.0.1"] } }
`)], { RXGATE_LOG_LEVEL: 'info' });
  gwPort = Number((await gateway.logged('rxgate listening'))['port']);
  gw = `http://127.0.0.1:${gwPort}`;
  await others;
}, 60_000);

afterAll(async () => {
  runs?.remove();
  await close(upstream);
  await close(idp);
  for (const i of [...balInstances, ...healthInstances]) await close(i.server);
});

interface Answer { status: number; headers: Record<string, string | string[] | undefined>; body: string }

/** A request on its own connection, from `from` when given (test/support/from-address.ts); a path goes to `gw`. */
function get(url: string, init: FromInit = {}): Promise<Answer> {
  return sendFrom(url.startsWith('http') ? url : gw + url, init);
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

describe('forwarded claims on a public route', () => {
  it('strips the top-level forwardClaims headers on a route with auth: none or no auth key, so a public route to the same upstream cannot forge them', async () => {
    await get('/pub/x', { headers: { 'X-User-Id': 'admin', 'x-other': 'kept' } });
    expect([seen.get('/pub/x')!['x-user-id'], seen.get('/pub/x')!['x-other']]).toEqual([undefined, 'kept']);
    await get('/open/x', { headers: { 'x-user-id': 'admin', 'x-other': 'kept' } });
    expect([seen.get('/open/x')!['x-user-id'], seen.get('/open/x')!['x-other']]).toEqual([undefined, 'kept']);
    await get('/hs/x', { headers: { authorization: `Bearer ${await hs({ sub: 'dave' })}`, 'x-user-id': 'admin' } });
    expect(seen.get('/hs/x')!['x-user-id']).toBe('dave');
  });
});

describe('JWKS (keys fetched from the identity provider)', () => {

  it('answers 503 with Retry-After while the IdP is down, without one fetch per request; then verifies once it is up', async () => {
    idpUp = false;
    jwksFetches = 0;
    jwks = { keys: [await jwk(rsaA.publicKey, 'a')] };
    const token = await rs(rsaA.privateKey, { kid: 'a' });
    for (let i = 0; i < 20; i++) {
      const res = await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${token}` } });
      expect([res.status, code(res.body)]).toEqual([503, 'SERVICE_UNAVAILABLE']);
      expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    }
    expect(jwksFetches).toBeLessThanOrEqual(3);
    idpUp = true;
    await until(async () => (await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey, { kid: 'a' })}` } })).status === 200, { timeout: 5000, interval: 100 });
  });

  it('refetches for unknown kids at most once per cooldown, so made-up kids cannot flood the IdP', async () => {
    idpUp = true;
    jwks = { keys: [await jwk(rsaA.publicKey, 'a')] };
    expect((await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey, { kid: 'a' })}` } })).status).toBe(200);
    jwksFetches = 0;
    for (let i = 0; i < 20; i++) {
      const res = await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaB.privateKey, { kid: `made-up-${i}` })}` } });
      expect(res.status).toBe(401);
    }
    // The keys expire every 400 ms here (cacheMaxAge), so a slow machine may also refetch for that.
    expect(jwksFetches).toBeLessThanOrEqual(3);
  });

  it('keeps verifying with the keys it has when a refetch fails after cacheMaxAge (the IdP down for a while)', async () => {
    idpUp = true;
    jwks = { keys: [await jwk(rsaA.publicKey, 'a')] };
    expect((await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey, { kid: 'a' })}` } })).status).toBe(200);
    idpUp = false;
    const fetched = jwksFetches;
    await new Promise((r) => setTimeout(r, 500)); // past cacheMaxAge (400 ms)
    const res = await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey, { kid: 'a' })}` } });
    expect(jwksFetches).toBeGreaterThan(fetched);
    expect(res.status).toBe(200);
    idpUp = true;
  });

  it('refuses an HS256 token (alg confusion: the public key as an HMAC secret) and alg none against the JWKS', async () => {
    idpUp = true;
    jwks = { keys: [await jwk(rsaA.publicKey, 'a')] };
    const pem = rsaA.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const confused = await new SignJWT({ sub: 'mallory' }).setProtectedHeader({ alg: 'HS256', kid: 'a' }).setExpirationTime('10m').sign(new TextEncoder().encode(pem));
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', kid: 'a' })).toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'mallory', exp: Math.floor(Date.now() / 1000) + 600 })).toString('base64url')}.`;
    for (const token of [confused, none]) {
      const res = await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${token}` } });
      expect([res.status, JSON.parse(res.body).error.message]).toEqual([401, 'token algorithm not allowed']);
    }
  });

  it('tries every key of the set for a token without kid (a set with two RSA keys, mid-rotation)', async () => {
    idpUp = true;
    jwks = { keys: [await jwk(rsaA.publicKey), await jwk(rsaB.publicKey)] };
    // Past cacheMaxAge (400 ms) the set is fetched again; B's token verifies once it has been.
    await until(async () => (await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaB.privateKey)}` } })).status === 200, { timeout: 5000, interval: 100 });
    expect((await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${await rs(rsaA.privateKey)}` } })).status).toBe(200);
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const res = await get(`${jwksBase}/j/x`, { headers: { authorization: `Bearer ${await rs(other.privateKey)}` } });
    expect(res.status).toBe(401);
  });
});

describe('rate limits (GCRA, RateLimit headers)', () => {
  it('answers 429 with Retry-After and RateLimit headers that agree with each other', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 4; i++) answers.push(await get('/rl/x', { from: '127.0.0.4' }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
    expect(answers.map((a) => a.headers['ratelimit-remaining'])).toEqual(['2', '1', '0', '0']);
    expect(answers.every((a) => a.headers['ratelimit-limit'] === '3')).toBe(true);
    const refused = answers[3]!;
    expect(code(refused.body)).toBe('RATE_LIMITED');
    const retryAfter = Number(refused.headers['retry-after']);
    // 3 a minute: the next one is due 20 s after the first, the bucket full 60 s after it.
    expect(retryAfter).toBeGreaterThanOrEqual(19);
    expect(retryAfter).toBeLessThanOrEqual(20);
    expect(Number(refused.headers['ratelimit-reset'])).toBeGreaterThanOrEqual(retryAfter);
    expect(Number(refused.headers['ratelimit-reset'])).toBeLessThanOrEqual(60);
  });

  it('admits burst requests back to back, then one per window / limit', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await get('/rlburst/x', { from: '127.0.0.4' })).status);
    expect(statuses).toEqual([200, 200, 429]);
  });

  it('counts clients behind a trusted proxy apart, and a stranger as one client whatever X-Forwarded-For it sends', async () => {
    const viaProxy = async (xff: string): Promise<number> => (await get('/rl/proxied', { from: '127.0.0.2', headers: { 'x-forwarded-for': xff } })).status;
    for (let i = 0; i < 3; i++) expect(await viaProxy('192.0.2.10')).toBe(200);
    expect(await viaProxy('192.0.2.10')).toBe(429);
    expect(await viaProxy('192.0.2.11')).toBe(200);
    const stranger: number[] = [];
    for (let i = 0; i < 4; i++) stranger.push((await get('/rl/stranger', { from: '127.0.0.3', headers: { 'x-forwarded-for': `198.51.100.${i}` } })).status);
    expect(stranger).toEqual([200, 200, 200, 429]);
  });

  it('falls back to the client address when the key header is missing or empty', async () => {
    expect((await get('/rlkey/x', { from: '127.0.0.5', headers: { 'x-api-key': 'k1' } })).status).toBe(200);
    expect((await get('/rlkey/x', { from: '127.0.0.5', headers: { 'x-api-key': 'k1' } })).status).toBe(429);
    expect((await get('/rlkey/x', { from: '127.0.0.5' })).status).toBe(200);
    expect((await get('/rlkey/x', { from: '127.0.0.5', headers: { 'x-api-key': '' } })).status).toBe(429);
    expect((await get('/rlkey/x', { from: '127.0.0.5' })).status).toBe(429);
  });
});

describe('rate limits keyed by a verified claim', () => {
  it('counts each subject apart, from one address, and a token that fails verification counts for nobody', async () => {
    const as = async (token: string): Promise<number> => (await get('/rlsub/x', { headers: { authorization: `Bearer ${token}` } })).status;
    expect(await as(await hs({ sub: 'alice' }))).toBe(200);
    expect(await as(await hs({ sub: 'alice' }))).toBe(429);
    expect(await as(await hs({ sub: 'bob' }))).toBe(200);
    const [h, p, sig] = (await hs({ sub: 'carol' })).split('.') as [string, string, string];
    const forged = `${h}.${p}.${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    expect(await as(forged)).toBe(401);
    expect(await as(await hs({ sub: 'carol' }))).toBe(200);
  });
});

describe('the IP filter behind trusted proxies', () => {
  it('refuses a denied stranger whatever X-Forwarded-For it sends, with 403 IP_FORBIDDEN', async () => {
    const res = await get('/deny/x', { from: '127.0.0.3', headers: { 'x-forwarded-for': '192.0.2.1' } });
    expect([res.status, code(res.body)]).toEqual([403, 'IP_FORBIDDEN']);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(hits.get('/deny/x')).toBeUndefined();
  });

  it('refuses a denied client behind the trusted proxy, and a client who forged a left entry is judged by the right one', async () => {
    expect((await get('/deny/a', { from: '127.0.0.2', headers: { 'x-forwarded-for': '10.9.9.9' } })).status).toBe(403);
    expect((await get('/deny/b', { from: '127.0.0.2', headers: { 'x-forwarded-for': '192.0.2.1, 10.9.9.9' } })).status).toBe(403);
    expect((await get('/deny/c', { from: '127.0.0.2', headers: { 'x-forwarded-for': '10.9.9.9, 192.0.2.1' } })).status).toBe(200);
    expect((await get('/deny/d', { from: '127.0.0.2', headers: { 'x-forwarded-for': '[::ffff:10.9.9.9]:4711' } })).status).toBe(403);
  });

  it('matches an IPv4-mapped IPv6 entry against the IPv4 client', async () => {
    expect((await get('/allow-mapped/x')).status).toBe(200);
    expect((await get('/allow-mapped/x', { from: '127.0.0.3' })).status).toBe(403);
  });
});

describe.skipIf(!redisUrl())('rate limits in Redis', () => {
  it('gives two instances on one Redis one limit, with the answers one instance in memory gives', async () => {
    const [a, b] = await Promise.all(redisShared);
    // One request of each series in turn: both fourth requests come as long after their series' first,
    // so Retry-After (whole seconds left) is the same; one series after the other, a loaded machine made them 19 and 20.
    const shared: Answer[] = [];
    const memory: Answer[] = [];
    for (let i = 0; i < 4; i++) {
      shared.push(await get(`${i % 2 === 0 ? a : b}/shared/x`));
      memory.push(await get(`${a}/mem/x`));
    }
    const view = (r: Answer): unknown[] => [r.status, r.headers['ratelimit-limit'], r.headers['ratelimit-remaining']];
    expect(shared.map(view)).toEqual([[200, '3', '2'], [200, '3', '1'], [200, '3', '0'], [429, '3', '0']]);
    expect(memory.map(view)).toEqual(shared.map(view));
    expect(shared[3]!.headers['retry-after']).toBe(memory[3]!.headers['retry-after']);
  });

  it('starts without Redis: failOpen admits (no 500) and counts it, failOpen: false answers 503 with Retry-After', async () => {
    const { proc, base, admin } = await redisDown!;
    const open: number[] = [];
    for (let i = 0; i < 5; i++) open.push((await get(`${base}/shared/x`)).status);
    expect(open).toEqual([200, 200, 200, 200, 200]);
    const closed = await get(`${base}/closed/x`);
    expect([closed.status, code(closed.body), closed.headers['retry-after']]).toEqual([503, 'SERVICE_UNAVAILABLE', '1']);
    const metrics = await get(`${admin}/metrics`);
    expect(metrics.body).toMatch(/rxgate_degraded_total\{[^}]*reason="ratelimit_redis_fallback"[^}]*\} [1-9]/);
    // Logged once per store (failOpen and not), not once per request.
    expect(proc.lines.filter((l) => String(l['msg']).includes('redis rate-limit store unreachable'))).toHaveLength(2);
  });
});


describe('balancing, retries, breaker, hedging and mirroring', () => {
  const reset = (): void => {
    for (const i of balInstances) {
      i.got = [];
      i.mode = 'ok';
    }
  };

  it('spreads round robin evenly over three instances', async () => {
    reset();
    const names: string[] = [];
    for (let i = 0; i < 9; i++) names.push((await get(`${balBase}/rr/x`)).body);
    expect(['a', 'b', 'c'].map((n) => names.filter((x) => x === n).length)).toEqual([3, 3, 3]);
  });

  it('skips a dead instance for every method: a refused connection was never sent, so even a POST goes elsewhere', async () => {
    reset();
    const answers: Answer[] = [];
    for (const method of ['GET', 'POST', 'GET', 'POST', 'DELETE', 'PATCH']) answers.push(await get(`${balBase}/withdead/x`, { method, body: 'payload' }));
    expect(answers.map((r) => [r.status, r.body])).toEqual(Array(6).fill([200, 'a']));
    expect(a.got).toHaveLength(6);
  });

  it('never replays a POST the upstream received (a reset after it was sent: 502), but retries a GET on the other instance', async () => {
    reset();
    b.mode = 'reset';
    const post = await get(`${balBase}/resets/p`, { method: 'POST', body: 'once' });
    const gets: Answer[] = [];
    for (let i = 0; i < 2; i++) gets.push(await get(`${balBase}/resets/g`));
    expect(post.status).toBe(502);
    expect([...b.got, ...c.got].filter((l) => l.startsWith('POST'))).toHaveLength(1);
    expect(gets.map((r) => [r.status, r.body])).toEqual([[200, 'c'], [200, 'c']]);
  });

  it('opens the breaker after consecutive failures and answers 503 CIRCUIT_OPEN with Retry-After', async () => {
    const statuses: number[] = [];
    let open: Answer | undefined;
    for (let i = 0; i < 12 && open === undefined; i++) {
      const res = await get(`${balBase}/lone/x`);
      statuses.push(res.status);
      if (res.status === 503) open = res;
    }
    expect(open, String(statuses)).toBeDefined();
    expect(code(open!.body)).toBe('CIRCUIT_OPEN');
    const retryAfter = Number(open!.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30);
    expect(statuses.slice(0, -1).every((s) => s === 502)).toBe(true);
  });

  it('takes an instance that fails its health check out of rotation, and back once it passes', async () => {
    reset();
    h1.mode = 'sick';
    await until(async () => {
      const names: string[] = [];
      for (let i = 0; i < 4; i++) names.push((await get(`${balBase}/checked/x`)).body);
      return names.every((n) => n === 'h2');
    }, { timeout: 5000, interval: 50 });
    h1.mode = 'ok';
    await until(async () => (await get(`${balBase}/checked/x`)).body === 'h1', { timeout: 5000, interval: 50 });
  });

  it('hedges a slow GET to the other instance, never a POST', async () => {
    reset();
    h1.mode = 'slow';
    h2.mode = 'slow';
    const post = await get(`${balBase}/hedged/p`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(200);
    expect([...h1.got, ...h2.got]).toHaveLength(1);
    reset();
    h1.mode = 'slow';
    h2.mode = 'slow';
    const res = await get(`${balBase}/hedged/g`);
    expect(res.status).toBe(200);
    expect([...h1.got, ...h2.got]).toHaveLength(2);
  });

  it('mirrors a copy with its body to the shadow, whose failure or slowness never reaches the client', async () => {
    reset();
    shadow.mode = 'slow';
    const res = await get(`${balBase}/mirrored/x`, { method: 'POST', body: 'copy me' });
    expect(res.status).toBe(200);
    await until(() => shadow.got.length === 1);
    expect(shadow.got[0]).toBe('POST /mirrored/x copy me');
    shadow.mode = 'reset';
    const again = await get(`${balBase}/mirrored/y`);
    expect([again.status, ['a', 'b', 'c'].includes(again.body)]).toEqual([200, true]);
  });
});

describe('config errors', () => {
  const services = `services: { up: { upstreams: ["http://127.0.0.1:${upPort}"] } }`;
  /** The problems the CLI would list for `yaml` (parseConfig is what loadConfig runs on the file's text). */
  function problems(yaml: string): string[] {
    try {
      parseConfig(yaml, 'probe.yaml', {});
    } catch (err) {
      if (err instanceof ConfigError) return [...err.problems];
      throw err;
    }
    return [];
  }
  const paths = (list: string[]): string[] => list.flatMap((p) => p.split('\n  - ')).map((p) => p.slice(0, p.indexOf(': ')));

  it('rxgate --check exits 2 and lists each problem with its key path; 0 and OK for a valid config', async () => {
    const run = async (yaml: string): Promise<{ code: number | null; out: string }> => {
      const proc = runs.start(['--config', runs.file(yaml), '--check']);
      let out = '';
      proc.proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
      proc.proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
      return { code: await proc.exited, out };
    };
    const [bad, good] = await Promise.all([
      run(`${services}\nroutes: [{ path: /a, service: up, timeot: 5s }, { path: /b, service: up, rateLimit: { limit: 1, window: 0s } }]\n`),
      run(`${services}\nroutes: [{ path: /a, service: up }]\n`),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.out).toMatch(/invalid config .*\n {2}- routes\[0\]\.timeot: unknown key \(did you mean timeouts\?\)\n {2}- routes\[1\]\.rateLimit\.window: must be at least 1ms\n$/);
    expect([good.code, good.out]).toEqual([0, expect.stringContaining('OK (1 services, 1 routes)')]);
  });

  it('refuses unknown keys, wrong types, bad durations, bad CIDRs, unknown services and unset variables, each with its key path', () => {
    expect(paths(problems(`
${services}
trustedProxies: [10.0.0.0/33]
routes:
  - { path: /a, service: up, timeot: 5s }
  - { path: /b, service: up, timeouts: { total: 10x } }
  - { path: /c, service: up, retry: { attempts: "3" } }
  - { path: /e, service: up, ipFilter: { deny: [not-an-ip] } }
`))).toEqual(['trustedProxies[0]', 'routes[0].timeot', 'routes[1].timeouts.total', 'routes[2].retry.attempts', 'routes[3].ipFilter.deny[0]']);
    // The checks across keys (a route's service exists) run once the keys themselves pass.
    expect(problems(`${services}\nroutes: [{ path: /a, service: up }, { path: /d, service: nobody }]\n`)).toEqual(['routes[1].service: unknown service "nobody" (known: up)']);
    // Variables are substituted before the schema runs: an unset one is reported on its own.
    expect(problems(`${services}\nroutes: [{ path: /f, service: up, rewrite: { stripPrefix: "\${BLACKBOX_POLICY_UNSET}" } }]\n`))
      .toEqual([expect.stringMatching(/^routes\[0\]\.rewrite\.stripPrefix: environment variable BLACKBOX_POLICY_UNSET is not set/)]);
  });

  it('refuses, with the key path, what the stages would refuse only at start (so --check passed it): a short secret, a bad key, algorithms that do not fit it, no key at all, a zero window, an empty key header', () => {
    expect(paths(problems(`
${services}
auth: { secret: short }
routes:
  - { path: /a, service: up, auth: { mode: required, publicKey: "not a pem", algorithms: [HS256] } }
  - { path: /b, service: up, auth: { mode: required, secret: "${SECRET}", algorithms: [RS256], forwardClaims: { sub: host } } }
  - { path: /c, service: up, rateLimit: { limit: 1, window: 0s, key: { header: "" } } }
`))).toEqual(['auth.secret', 'routes[0].auth.publicKey', 'routes[0].auth.algorithms[0]', 'routes[1].auth.forwardClaims.sub', 'routes[1].auth.algorithms[0]', 'routes[2].rateLimit.window', 'routes[2].rateLimit.key.header']);
    expect(problems(`${services}\nroutes: [{ path: /a, service: up, auth: required }]\n`))
      .toEqual(['routes[0].auth: verifies tokens but has no key: set secret, publicKey or jwksUrl here or in the top-level auth']);
  });

  it('refuses a timeout of 0, which answered every request 504 at once (total) where Envoy reads 0 as no timeout', () => {
    expect(problems(`${services}\nroutes: [{ path: /a, service: up, timeouts: { total: 0s, perAttempt: 0, exchange: 0ms } }]\n`)).toEqual([
      'routes[0].timeouts.total: must be more than 0 (leave the key out for no limit)',
      'routes[0].timeouts.perAttempt: must be more than 0 (leave the key out for no limit)',
      'routes[0].timeouts.exchange: must be more than 0 (leave the key out for no limit)',
    ]);
  });

  it("refuses a route that repeats another route's path, methods and match (it could never be chosen), as nginx refuses a duplicate location", () => {
    expect(problems(`
${services}
routes:
  - { path: /a, service: up }
  - { path: /a, service: up }
  - { path: /b, service: up, methods: [GET, POST] }
  - { path: /b, service: up, methods: [POST, GET] }
  - { path: /c, service: up, methods: [GET] }
  - { path: /c, service: up, methods: [POST] }
  - { path: /d, service: up, match: { headers: { x-beta: "1" } } }
  - { path: /d, service: up }
`)).toEqual([
      'routes[1].path: routes[0] has the same path, methods and match: this route would never be used',
      'routes[3].path: routes[2] has the same path, methods and match: this route would never be used',
    ]);
  });
});

describe('health, panic, half-open breaker, Retry-After, sticky hashing', () => {

  it('sends anyway when every instance fails its health check (panic: true), and answers 503 NO_HEALTHY_UPSTREAM with Retry-After with panic: false', async () => {
    await until(async () => (await get(`${healthBase}/strict/x`)).status === 503, { timeout: 5000, interval: 50 });
    const strict = await get(`${healthBase}/strict/x`);
    expect([code(strict.body), Number(strict.headers['retry-after']) >= 1]).toEqual(['NO_HEALTHY_UPSTREAM', true]);
    expect(p3.got).toEqual([]);
    const panicky = await get(`${healthBase}/panicky/x`);
    expect([panicky.status, ['p1', 'p2'].includes(panicky.body)]).toEqual([200, true]);
  });

  it('half-opens the breaker after resetTimeout and closes it on a successful probe', async () => {
    f.mode = 'reset';
    let open: Answer | undefined;
    for (let i = 0; i < 6 && open === undefined; i++) {
      const res = await get(`${healthBase}/flaky/x`);
      if (res.status === 503) open = res;
    }
    expect(code(open!.body)).toBe('CIRCUIT_OPEN');
    const sent = f.got.length;
    expect((await get(`${healthBase}/flaky/x`)).status).toBe(503);
    expect(f.got.length).toBe(sent);
    f.mode = 'ok';
    await until(async () => (await get(`${healthBase}/flaky/x`)).status === 200, { timeout: 5000, interval: 100 });
    expect((await get(`${healthBase}/flaky/x`)).status).toBe(200);
  });

  it('waits out a 503 Retry-After only up to retry.cap, then retries', async () => {
    r.mode = 'busy-once';
    const res = await get(`${healthBase}/busy/x`);
    expect([res.status, res.body, res.headers['x-gateway-attempts']]).toEqual([200, 'r', '2']);
    expect(r.got).toHaveLength(2);
  });

  it('ejects an instance that answers 503 only when ejectOnStatuses lists it; by default its 503 is its answer', async () => {
    e1.mode = 'fail';
    const keeping: string[] = [];
    for (let i = 0; i < 6; i++) keeping.push((await get(`${healthBase}/keeping/x`)).body);
    expect(keeping.filter((n) => n === 'e1')).toHaveLength(3);
    const ejecting: string[] = [];
    for (let i = 0; i < 6; i++) ejecting.push((await get(`${healthBase}/ejecting/x`)).body);
    expect(ejecting.filter((n) => n === 'e1').length).toBeLessThanOrEqual(1);
    e1.mode = 'ok';
  });

  it('keeps a key on one instance with the hash balancer', async () => {
    for (const user of ['alice', 'bob', 'carol']) {
      const names = new Set<string>();
      for (let i = 0; i < 5; i++) names.add((await get(`${healthBase}/sticky/x`, { headers: { 'x-user': user } })).body);
      expect(names.size, user).toBe(1);
    }
  });
});
