import type { ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendFrom, type FromAnswer, type FromInit } from '../support/from-address.ts';
import { freePort } from '../support/global-setup.ts';
import { rawSend } from '../support/raw-http.ts';
import { redisUrl } from '../support/redis.ts';
import { startRedisServer, stopRedisServer } from '../support/redis-server.ts';
import { rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * The rate-limit audit (notes/s13/A14-findings.md): rxgate started as users
 * start it (the CLI on a YAML file) and sent what users of Kong's
 * rate-limiting plugin, Envoy's local and global rate limits, nginx
 * `limit_req` and Traefik's RateLimit send those: exactly N admitted, per key
 * (address, header, claim, route), a request without the key, hostile keys,
 * the 429 and its headers, CORS, HEAD and OPTIONS, two instances on one real
 * redis-server that is killed and started again, `--workers 2` with the
 * memory store, and bad rates in the config. Every limit is per hour, so no
 * case depends on how fast the machine is; loopback source addresses
 * (127.0.0.x) play different clients.
 */

const SECRET = 'blackbox-ratelimit-secret-of-at-least-32-bytes';

let runs: RxgateRuns;
let upstream: Server;
let upPort = 0;
/** Requests the upstream got, by path: a refused request must never reach it. */
const hits = new Map<string, number>();
let gw = '';
let admin = '';

type Answer = FromAnswer;

/** One request on its own connection; a path goes to the main gateway. */
function send(url: string, init: FromInit = {}): Promise<Answer> {
  return sendFrom(url.startsWith('http') ? url : gw + url, init);
}

async function statuses(n: number, url: string, init: Parameters<typeof send>[1] = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await send(url, init)).status);
  return out;
}

function token(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
}

/** The value of `name`{`labels`} in a Prometheus text page, 0 when absent. */
function sample(page: string, name: string, labels: string): number {
  const line = page.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

interface Started { proc: RxgateProcess; base: string; admin: string }

/**
 * rxgate on loopback port 0 (and its admin listener) with `top` (top-level
 * keys), the upstream as service `up` and `routes`, after `args`, logging at
 * info; resolves once both listen.
 */
async function gateway(top: string, routes: string, args: string[] = []): Promise<Started> {
  const proc = runs.start([...args, '--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
${top}
services:
  up: { upstreams: ["http://127.0.0.1:${upPort}"], retry: false }
routes:
${routes}`)], { RXGATE_LOG_LEVEL: 'info' });
  const [l, adm] = await Promise.all([proc.logged('rxgate listening'), proc.logged('rxgate admin listening')]);
  return { proc, base: `http://127.0.0.1:${Number(l['port'])}`, admin: `http://127.0.0.1:${Number(adm['port'])}` };
}

/** A gateway of two worker threads with the memory store (started beside the main one). */
let workers: Promise<Started>;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const path = new URL(req.url!, 'http://up').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.method} ${path}`));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upPort = (upstream.address() as AddressInfo).port;
  runs = rxgateRuns();
  workers = gateway('', '  - { path: /w/*, service: up, rateLimit: { limit: 1, window: 1h } }', ['--workers', '2']);
  workers.catch(() => undefined);
  const main = await gateway(`auth: { secret: "${SECRET}" }`, `
  - { path: /ip/*, service: up, rateLimit: { limit: 2, window: 1h } }
  - { path: /burst/*, service: up, rateLimit: { limit: 10, window: 1h, burst: 3 } }
  - { path: /hdr/*, service: up, rateLimit: { limit: 1, window: 1h, key: { header: x-api-key } } }
  - { path: /sub/*, service: up, auth: { mode: optional }, rateLimit: { limit: 1, window: 1h, key: { claim: sub } } }
  - { path: /route/*, service: up, rateLimit: { limit: 1, window: 1h, key: route } }
  - { path: /cors/*, service: up, cors: { origins: ["https://app.example"], exposeHeaders: [retry-after, ratelimit-remaining] }, rateLimit: { limit: 1, window: 1h } }
  - { path: /methods/*, service: up, rateLimit: { limit: 2, window: 1h } }
  - { path: /quiet/*, service: up, rateLimit: { limit: 1, window: 1h, headers: false } }
`);
  [gw, admin] = [main.base, main.admin];
}, 60_000);

afterAll(async () => {
  runs?.remove();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => (upstream === undefined ? r() : upstream.close(() => r())));
});

describe('limit and burst, per key', () => {
  it('admits exactly limit requests from one address, refuses the next ones before the upstream, and counts another address apart', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 4; i++) answers.push(await send('/ip/a', { from: '127.0.0.11' }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 429, 429]);
    expect(answers.map((a) => a.headers['ratelimit-limit'])).toEqual(['2', '2', '2', '2']);
    expect(answers.map((a) => a.headers['ratelimit-remaining'])).toEqual(['1', '0', '0', '0']);
    expect(hits.get('/ip/a')).toBe(2);
    expect(await statuses(3, '/ip/a', { from: '127.0.0.12' })).toEqual([200, 200, 429]);
  });

  it('admits burst requests back to back when burst is below limit, and says the burst in remaining', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 4; i++) answers.push(await send('/burst/x', { from: '127.0.0.13' }));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
    expect(answers.map((a) => a.headers['ratelimit-remaining'])).toEqual(['2', '1', '0', '0']);
    expect(answers.every((a) => a.headers['ratelimit-limit'] === '10')).toBe(true);
    // 10 an hour: one is due every 360 s, so the refused one may come back within 360 s.
    const retryAfter = Number(answers[3]!.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(360);
  });

  it('counts by a header, and a request without it (or with it empty) against its address, as documented', async () => {
    expect(await statuses(2, '/hdr/x', { from: '127.0.0.14', headers: { 'x-api-key': 'k1' } })).toEqual([200, 429]);
    expect((await send('/hdr/x', { from: '127.0.0.14', headers: { 'x-api-key': 'k2' } })).status).toBe(200);
    expect((await send('/hdr/x', { from: '127.0.0.14' })).status).toBe(200);
    expect((await send('/hdr/x', { from: '127.0.0.14', headers: { 'x-api-key': '' } })).status).toBe(429);
    expect((await send('/hdr/x', { from: '127.0.0.15' })).status).toBe(200);
  });

  it('counts a 10 KB key value as itself: the same value again is refused, one differing in its last byte is not', async () => {
    const big = 'k'.repeat(10 * 1024);
    expect(await statuses(2, '/hdr/big', { headers: { 'x-api-key': big } })).toEqual([200, 429]);
    expect((await send('/hdr/big', { headers: { 'x-api-key': `${big.slice(0, -1)}j` } })).status).toBe(200);
    expect(hits.get('/hdr/big')).toBe(2);
  });

  it('counts by a verified claim, and an unauthenticated request or a token without the claim against its address', async () => {
    const as = async (bearer: string | undefined, from: string): Promise<number> =>
      (await send('/sub/x', { from, headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` } })).status;
    const alice = await token({ sub: 'alice' });
    expect([await as(alice, '127.0.0.16'), await as(alice, '127.0.0.17')]).toEqual([200, 429]);
    expect(await as(await token({ sub: 'bob' }), '127.0.0.16')).toBe(200);
    expect(await as(undefined, '127.0.0.18')).toBe(200);
    expect(await as(await token({ tenant: 't' }), '127.0.0.18')).toBe(429);
    expect(await as(undefined, '127.0.0.18')).toBe(429);
  });

  it('keeps one bucket for everyone on a route keyed by route', async () => {
    expect((await send('/route/x', { from: '127.0.0.19' })).status).toBe(200);
    expect((await send('/route/y', { from: '127.0.0.20' })).status).toBe(429);
  });
});

describe('the 429', () => {
  it('is JSON {"error":{"code","message"}} with Retry-After in whole seconds (at least 1) and RateLimit headers that agree with it', async () => {
    await send('/ip/b', { from: '127.0.0.21' });
    await send('/ip/b', { from: '127.0.0.21' });
    const refused = await send('/ip/b', { from: '127.0.0.21' });
    expect(refused.status).toBe(429);
    expect(refused.headers['content-type']).toMatch(/^application\/json/);
    expect(JSON.parse(refused.body)).toEqual({ error: { code: 'RATE_LIMITED', message: 'rate limit exceeded' } });
    expect(refused.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    // 2 an hour: the next one is due 30 minutes after the first, the bucket full an hour after it.
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeLessThanOrEqual(1800);
    expect(retryAfter).toBeGreaterThan(1700);
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    expect(Number(refused.headers['ratelimit-reset'])).toBeGreaterThanOrEqual(retryAfter);
    expect(Number(refused.headers['ratelimit-reset'])).toBeLessThanOrEqual(3600);
  });

  it('keeps the connection open, as nginx does: a refused POST\'s body is read past and the next request on it is answered', async () => {
    expect(await statuses(2, '/ip/keep')).toEqual([200, 200]);
    const port = Number(new URL(gw).port);
    const body = 'x'.repeat(1000);
    // A third request on the same socket once the two answers are out, then a wait for a close: rawSend settles as
    // soon as it has the answers it expects, so `closed: false` alone said nothing (review RH, L4).
    const out = await rawSend(port, [
      `POST /ip/keep HTTP/1.1\r\nHost: gw\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n${body}`
      + 'GET /ip/keep HTTP/1.1\r\nHost: gw\r\n\r\n',
      'GET /ip/keep HTTP/1.1\r\nHost: gw\r\n\r\n',
    ], { expected: 3, gapMs: 300, awaitClose: true, holdMs: 500 });
    expect(out.responses.map((r) => [r.status, JSON.parse(r.body).error.code])).toEqual([[429, 'RATE_LIMITED'], [429, 'RATE_LIMITED'], [429, 'RATE_LIMITED']]);
    for (const r of out.responses) expect(r.head).not.toMatch(/\r\nconnection: *close/i);
    expect([out.closed, out.held]).toEqual([false, false]);
    expect(hits.get('/ip/keep')).toBe(2);
  });

  it('carries the CORS headers, so a browser app can read Retry-After; a preflight is not counted', async () => {
    const preflight = { method: 'OPTIONS', from: '127.0.0.22', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } };
    expect(await statuses(3, '/cors/x', preflight)).toEqual([204, 204, 204]);
    const cors = { from: '127.0.0.22', headers: { origin: 'https://app.example' } };
    expect((await send('/cors/x', cors)).status).toBe(200);
    const refused = await send('/cors/x', cors);
    expect(refused.status).toBe(429);
    expect(refused.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(refused.headers['access-control-expose-headers']).toBe('retry-after, ratelimit-remaining');
  });

  it('counts HEAD and a plain OPTIONS like any method; the refused HEAD has no body', async () => {
    const from = '127.0.0.23';
    expect((await send('/methods/x', { method: 'HEAD', from })).status).toBe(200);
    expect((await send('/methods/x', { method: 'OPTIONS', from })).status).toBe(200);
    const head = await send('/methods/x', { method: 'HEAD', from });
    expect([head.status, head.body, head.headers['retry-after'] !== undefined]).toEqual([429, '', true]);
    expect((await send('/methods/x', { from })).status).toBe(429);
  });

  it('with headers: false, leaves admitted answers alone and still tells the refused one, and counts it in rxgate_rate_limited_total', async () => {
    const before = sample(await (await fetch(`${admin}/metrics`)).text(), 'rxgate_rate_limited_total', 'route="/quiet/*"');
    const ok = await send('/quiet/x', { from: '127.0.0.24' });
    expect([ok.status, Object.keys(ok.headers).filter((h) => h.startsWith('ratelimit-'))]).toEqual([200, []]);
    const refused = await send('/quiet/x', { from: '127.0.0.24' });
    expect([refused.status, refused.headers['ratelimit-limit'], refused.headers['ratelimit-remaining']]).toEqual([429, '1', '0']);
    const after = sample(await (await fetch(`${admin}/metrics`)).text(), 'rxgate_rate_limited_total', 'route="/quiet/*"');
    expect(after - before).toBe(1);
  });
});

describe('--workers 2 with the memory store', () => {
  it('limits per worker, as docs/workers.md says (not one shared zone as nginx has): at most workers × limit admitted, every refusal counted', async () => {
    const { base, admin: adm } = await workers;
    const answers = await statuses(16, `${base}/w/x`);
    const admitted = answers.filter((s) => s === 200).length;
    expect(answers.every((s) => s === 200 || s === 429)).toBe(true);
    expect(admitted).toBeGreaterThanOrEqual(1);
    expect(admitted).toBeLessThanOrEqual(2);
    const page = await (await fetch(`${adm}/metrics`)).text();
    expect(sample(page, 'rxgate_rate_limited_total', 'route="/w/*"')).toBe(16 - admitted);
  });
});

describe('bad rates in the config', () => {
  it('rxgate --check refuses a zero or non-numeric limit, a zero or unparsable window, a negative or fractional burst, failOpen on a memory store, each with its key path', async () => {
    const proc = runs.start(['--check', '--config', runs.file(`
services: { up: { upstreams: ["http://127.0.0.1:${upPort}"] } }
routes:
  - { path: /a, service: up, rateLimit: { limit: 0, window: 1s } }
  - { path: /b, service: up, rateLimit: { limit: abc, window: 1s } }
  - { path: /c, service: up, rateLimit: { limit: 5, window: 0s } }
  - { path: /d, service: up, rateLimit: { limit: 5, window: 10r/s } }
  - { path: /e, service: up, rateLimit: { limit: 5, window: 1s, burst: -1 } }
  - { path: /f, service: up, rateLimit: { limit: 5, window: 1s, burst: 1.5 } }
  - { path: /g, service: up, rateLimit: { rate: 10r/s } }
  - { path: /h, service: up, rateLimit: { limit: 5, window: 1s, failOpen: false } }
`)]);
    let out = '';
    proc.proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
    expect(await proc.exited).toBe(2);
    const paths = out.split('\n').filter((l) => l.startsWith('  - ')).map((l) => l.slice(4, l.indexOf(': ')));
    expect(paths).toEqual([
      'routes[0].rateLimit.limit', 'routes[1].rateLimit.limit', 'routes[2].rateLimit.window', 'routes[3].rateLimit.window',
      'routes[4].rateLimit.burst', 'routes[5].rateLimit.burst',
      'routes[6].rateLimit.limit', 'routes[6].rateLimit.window', 'routes[6].rateLimit.rate',
      'routes[7].rateLimit.failOpen',
    ]);
    expect(out).toContain('routes[7].rateLimit.failOpen: applies only to store: redis');
  });
});

describe.skipIf(!redisUrl())('two instances on one redis-server that goes away and comes back', () => {
  let redis: ChildProcess | undefined;
  let port = 0;
  const shared = (): Promise<Started> => gateway(`redis: { url: "redis://127.0.0.1:${port}" }`, `
  - { path: /shared/*, service: up, rateLimit: { limit: 2, window: 1h, store: redis } }
  - { path: /closed/*, service: up, rateLimit: { limit: 100, window: 1h, store: redis, failOpen: false } }
`);
  let one: Started;
  let two: Started;

  beforeAll(async () => {
    port = await freePort();
    redis = await startRedisServer(port);
    [one, two] = await Promise.all([shared(), shared()]);
  }, 60_000);

  afterAll(async () => {
    if (redis !== undefined) await stopRedisServer(redis);
  });

  it('holds one limit across both instances', async () => {
    const answers = [await send(`${one.base}/shared/x`), await send(`${two.base}/shared/x`), await send(`${one.base}/shared/x`), await send(`${two.base}/shared/x`)];
    expect(answers.map((a) => [a.status, a.headers['ratelimit-remaining']])).toEqual([[200, '1'], [200, '0'], [429, '0'], [429, '0']]);
  });

  it('fails open or closed as configured while Redis is down (logged once, counted), a third instance starts without it, and all recover without a restart', async () => {
    await stopRedisServer(redis!, 'SIGKILL');
    redis = undefined;
    expect(await statuses(3, `${one.base}/shared/y`)).toEqual([200, 200, 200]);
    const closed = await send(`${one.base}/closed/x`);
    expect([closed.status, JSON.parse(closed.body).error.code, closed.headers['retry-after']]).toEqual([503, 'SERVICE_UNAVAILABLE', '1']);
    // Logged once per store (the failOpen one and the other), not once per request.
    const unreachable = (): number => one.proc.lines.filter((l) => String(l['msg']).startsWith('redis rate-limit store unreachable')).length;
    await until(() => unreachable() >= 2);
    expect(unreachable()).toBe(2);
    const page = await (await fetch(`${one.admin}/metrics`)).text();
    expect(sample(page, 'rxgate_degraded_total', 'reason="ratelimit_redis_fallback"')).toBeGreaterThanOrEqual(4);

    const three = await shared();
    expect((await send(`${three.base}/closed/x`)).status).toBe(503);
    redis = await startRedisServer(port);
    for (const g of [one, two, three]) await until(async () => (await send(`${g.base}/closed/x`)).status === 200, { timeout: 20_000, interval: 200 });
    // `two` saw no failure (nothing asked it while Redis was down), so only the others say so.
    await Promise.all([one.proc.logged('redis rate-limit store reachable again'), three.proc.logged('redis rate-limit store reachable again')]);
    // The restarted Redis kept nothing (no persistence): a fresh budget, held across the three.
    const after = [await send(`${one.base}/shared/z`), await send(`${three.base}/shared/z`), await send(`${two.base}/shared/z`)];
    expect(after.map((a) => a.status)).toEqual([200, 200, 429]);
  }, 60_000);
});
