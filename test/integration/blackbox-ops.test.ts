import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/global-setup.ts';
import { startRedisServer, stopRedisServer } from '../support/redis-server.ts';
import { redisUrl } from '../support/redis.ts';
import { rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * The fifth black-box audit (notes/s8/A5-findings.md): rxgate started as
 * users start it (the CLI on a YAML file), probed on its operations side:
 * Redis-backed limits and cache shared by two gateways and through Redis
 * outages, hot reload under load, workers, and what the logs, metrics and
 * trace headers say.
 */

const shared = redisUrl();
let runs: RxgateRuns;
let upstream: Server;
let up = '';
const hits = new Map<string, number>();
let redisPort = 0;
let redis: ChildProcess | undefined;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    const path = new URL(req.url!, 'http://up').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    // /items/hang never answers (a client that gives up).
    if (path === '/items/hang') return;
    res.setHeader('cache-control', 'max-age=60');
    res.setHeader('x-seen', JSON.stringify(req.headers));
    res.end(`from ${path}`);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  runs = rxgateRuns();
});

afterAll(async () => {
  runs?.remove();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
  if (redis !== undefined) await stopRedisServer(redis);
});

interface Gw {
  proc: RxgateProcess;
  gw: string;
  admin: string;
  /** Writes `yaml` (after the listeners) over the config file and reloads with POST /reload; resolves with its answer. */
  reload(yaml: string): Promise<{ status: number; body: string }>;
}

const LISTENERS = 'listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\nreload: { watch: false }\n';

async function gateway(yaml: string, env: Record<string, string> = {}, args: string[] = []): Promise<Gw> {
  const file = runs.file(LISTENERS + yaml);
  const proc = runs.start(['--config', file, ...args], { RXGATE_LOG_LEVEL: 'info', ...env });
  const [l, a] = await Promise.all([proc.logged('rxgate listening'), proc.logged('rxgate admin listening')]);
  const admin = `http://127.0.0.1:${a['port'] as number}`;
  return {
    proc, admin, gw: `http://127.0.0.1:${l['port'] as number}`,
    async reload(next) {
      writeFileSync(file, LISTENERS + next);
      const res = await request(`${admin}/reload`, { method: 'POST' });
      return { status: res.statusCode, body: await res.body.text() };
    },
  };
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const res = await request(url, { headers, headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: res.statusCode, headers: res.headers as Record<string, string>, body: await res.body.text() };
}

async function metric(admin: string, name: string): Promise<number> {
  const text = (await get(`${admin}/metrics`)).body;
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

const cli = (port: number, ...args: string[]): string => execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();

describe.skipIf(!shared)('Redis shared by two gateways, and its outages', () => {
  let a: Gw;
  let b: Gw;
  const routes = (url: string): string => `
redis: { url: "${url}" }
services: { up: { upstreams: ["${up}"] } }
routes:
  - { path: /rl/*, service: up, rateLimit: { limit: 3, window: 1h, store: redis, failOpen: false, key: { header: x-client } } }
  - { path: /open/*, service: up, rateLimit: { limit: 2, window: 1h, store: redis, key: { header: x-client } } }
  - { path: /c/*, service: up, cache: { ttl: 60s, store: redis } }
`;
  /** A redis-server with a password, for the last case. */
  let secured: ChildProcess | undefined;
  let securedPort = 0;
  beforeAll(async () => {
    [redisPort, securedPort] = [await freePort(), await freePort()];
    secured = spawn('redis-server', ['--port', String(securedPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--requirepass', 's3cr3t-pass'], { stdio: 'ignore' });
    redis = await startRedisServer(redisPort);
    [a, b] = await Promise.all([gateway(routes(`redis://127.0.0.1:${redisPort}`)), gateway(routes(`redis://127.0.0.1:${redisPort}`))]);
  });
  afterAll(() => {
    secured?.kill('SIGKILL');
  });

  it('gives two gateways one limit (the 4th of 3 is 429 on either) and one cache (a miss on one is a hit on the other); every key expires', async () => {
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await get(`${(i % 2 === 0 ? a : b).gw}/rl/x`, { 'x-client': 'shared' }));
    expect(answers.map((x) => x.status)).toEqual([200, 200, 200, 429]);
    expect(answers.map((x) => x.headers['ratelimit-remaining'])).toEqual(['2', '1', '0', '0']);
    expect(Number(answers[3]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // The key holds Host: instances behind one load balancer see the same one.
    const miss = await get(`${a.gw}/c/shared`, { host: 'api.example' });
    await until(() => cli(redisPort, '--scan', '--pattern', 'rxgate:cache:*') !== '');
    const hit = await get(`${b.gw}/c/shared`, { host: 'api.example' });
    expect([miss.headers['x-cache'], hit.headers['x-cache'], hit.body, hits.get('/c/shared')]).toEqual(['MISS', 'HIT', 'from /c/shared', 1]);
    const keys = cli(redisPort, '--scan').split('\n').filter((k) => k !== '');
    expect(keys.length).toBeGreaterThanOrEqual(2);
    for (const key of keys) expect(Number(cli(redisPort, 'PTTL', key)), key).toBeGreaterThan(0);
  });

  it('keys a lone unnamed route by its path alone, and unnamed routes sharing a path by path#hash, with no brace (Redis Cluster would hash only the braces\' part: one slot for all)', async () => {
    const url = `redis://127.0.0.1:${redisPort}`;
    const pair = (how: string): string => `  - { path: /pair/*, ${how}, service: up, rateLimit: { limit: 5, window: 1h, store: redis, key: { header: x-client } } }\n`;
    expect(await a.reload(routes(url) + pair('methods: [GET]') + pair('methods: [POST], match: { headers: { x-tier: gold } }'))).toMatchObject({ status: 200 });
    await get(`${a.gw}/rl/x`, { 'x-client': 'keyed' });
    const res = await request(`${a.gw}/pair/x`, { method: 'POST', body: 'x', headers: { 'x-client': 'keyed', 'x-tier': 'gold' } });
    await res.body.dump();
    await get(`${a.gw}/pair/x`, { 'x-client': 'keyed' });
    const keys = cli(redisPort, '--scan', '--pattern', '*keyed*').split('\n').filter((k) => k !== '').sort();
    // Before: every unnamed route's id was its path and the JSON of its methods and match ({"headers":…}).
    expect(keys).toHaveLength(3);
    expect(keys[2]).toBe('rxgate:rl:/rl/*:header:x-client:keyed');
    const paired = /^rxgate:rl:\/pair\/\*#[A-Za-z0-9_-]{12}:header:x-client:keyed$/;
    expect(keys.slice(0, 2)).toEqual([expect.stringMatching(paired), expect.stringMatching(paired)]);
    expect(keys[0]).not.toBe(keys[1]);
    for (const key of keys) expect(key).not.toMatch(/[{}]/);
    expect(await a.reload(routes(url))).toMatchObject({ status: 200 });
  });

  it('keeps counting in Redis across a reload (the reload closed the Redis client: every check after it fell back)', async () => {
    const before = [];
    for (let i = 0; i < 2; i++) before.push((await get(`${a.gw}/rl/x`, { 'x-client': 'reload' })).status);
    const reload = await request(`${a.admin}/reload`, { method: 'POST' });
    expect(reload.statusCode).toBe(200);
    await reload.body.dump();
    const after = [];
    for (let i = 0; i < 2; i++) after.push((await get(`${a.gw}/rl/x`, { 'x-client': 'reload' })).status);
    expect([...before, ...after]).toEqual([200, 200, 200, 429]);
    await get(`${a.gw}/c/reload`);
    expect((await get(`${a.gw}/c/reload`)).headers['x-cache']).toBe('HIT');
    expect(a.proc.lines.filter((l) => String(l['msg']).includes('unreachable'))).toEqual([]);
  });

  it('answers while Redis is stopped (SIGSTOP: connected, never answering) within the store timeouts, and as before once it answers again', async () => {
    process.kill(redis!.pid!, 'SIGSTOP');
    try {
      const during = await Promise.all([get(`${a.gw}/rl/x`, { 'x-client': 'paused' }), get(`${a.gw}/open/x`, { 'x-client': 'paused' }), get(`${a.gw}/c/paused`)]);
      expect(during.map((x) => [x.status, x.headers['retry-after'] ?? x.headers['x-cache']])).toEqual([[503, '1'], [200, undefined], [200, 'BYPASS']]);
    } finally {
      process.kill(redis!.pid!, 'SIGCONT');
    }
    await until(async () => (await get(`${a.gw}/rl/x`, { 'x-client': 'paused-after' })).status === 200);
  });

  it('keeps answering when Redis dies mid-traffic (503 for failOpen: false, admitted otherwise, cache bypassed), logs and counts it, and recovers when it returns, without a restart', async () => {
    const before = await metric(a.admin, 'rxgate_degraded_total');
    await stopRedisServer(redis!, 'SIGKILL');
    const during = await Promise.all([get(`${a.gw}/rl/x`, { 'x-client': 'dead' }), get(`${a.gw}/open/x`, { 'x-client': 'dead' }), get(`${a.gw}/c/dead`)]);
    expect(during.map((x) => [x.status, x.headers['retry-after'] ?? x.headers['x-cache']])).toEqual([[503, '1'], [200, undefined], [200, 'BYPASS']]);
    expect(await metric(a.admin, 'rxgate_degraded_total')).toBeGreaterThan(before);
    await a.proc.logged('redis unreachable: rate limits fall back and the cache bypasses');
    redis = await startRedisServer(redisPort);
    await until(async () => (await get(`${a.gw}/rl/x`, { 'x-client': 'back' })).status === 200, { timeout: 10_000, interval: 100 });
    await a.proc.logged('redis reachable again');
    await get(`${b.gw}/c/back`, { host: 'api.example' });
    await until(async () => (await get(`${a.gw}/c/back`, { host: 'api.example' })).headers['x-cache'] === 'HIT', { timeout: 10_000, interval: 100 });
  });
  it('moves limits and cache to the Redis a reload names (they stayed on the old client), with its password and database; no password is ever logged, a wrong one is', async () => {
    // The last of this describe: b leaves the Redis the others share for one with a password.
    const auth = ['-a', 's3cr3t-pass', '--no-auth-warning'];
    const moved = (port: number, ...args: string[]): string[] => cli(port, ...args, '--scan', '--pattern', '*moved*').split('\n').filter((k) => k !== '');
    await get(`${b.gw}/rl/x`, { 'x-client': 'moved' });
    expect(moved(redisPort)).toHaveLength(1);
    expect(await b.reload(routes(`redis://:s3cr3t-pass@127.0.0.1:${securedPort}/3`))).toMatchObject({ status: 200 });
    const after = [];
    for (let i = 0; i < 4; i++) after.push((await get(`${b.gw}/rl/x`, { 'x-client': 'moved' })).status);
    // A bucket of its own there: the old Redis's one request does not count.
    expect(after).toEqual([200, 200, 200, 429]);
    await get(`${b.gw}/c/moved`);
    await until(() => moved(securedPort, ...auth, '-n', '3').length === 2);
    expect(moved(securedPort, ...auth, '-n', '0')).toEqual([]);
    expect(await b.reload(routes(`redis://:wrong-pass@127.0.0.1:${securedPort}/3`))).toMatchObject({ status: 200 });
    expect((await get(`${b.gw}/rl/x`, { 'x-client': 'wrong' })).status).toBe(503);
    // Said (a warning with Redis's own words), the password not.
    await until(() => b.proc.lines.some((l) => (l['level'] as number) >= 40 && String(l['err']).includes('WRONGPASS')));
    expect(b.proc.stdout()).not.toContain('s3cr3t-pass');
    expect(b.proc.stdout()).not.toContain('wrong-pass');
  });
});

describe('one gateway: per-route limits, reloads under load, logs, metrics and trace headers', () => {
  let g: Gw;
  let other: Server;
  let otherUrl = '';
  /** The config, with /swap/* on `service` (up or other) and `extra` keys on that route. */
  const config = (service: string, extra = ''): string => `
log: { headers: [authorization, cookie, user-agent] }
services:
  up: { upstreams: ["${up}"] }
  down: { upstreams: ["http://127.0.0.1:1"], retry: false }
  other: { upstreams: ["${otherUrl}"] }
routes:
  - { path: /api/*, methods: [GET], service: up, rateLimit: { limit: 100, window: 1h } }
  - { path: /api/*, methods: [POST], service: up, rateLimit: { limit: 1, window: 1h } }
  - { path: /tier/*, match: { headers: { x-tier: gold } }, service: up, rateLimit: { limit: 100, window: 1h } }
  - { path: /tier/*, service: up, rateLimit: { limit: 1, window: 1h } }
  - { name: items, path: /items/:id, service: up }
  - { path: /down/*, service: down }
  - { path: /swap/*, service: ${service}${extra} }
`;
  beforeAll(async () => {
    other = createServer((req, res) => {
      req.resume();
      res.end('other');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    g = await gateway(config('up'), { RXGATE_LOG_LEVEL: 'trace' });
  });
  afterAll(async () => {
    await new Promise((r) => other?.close(r));
  });

  it('counts each route in its own bucket when unnamed routes share a path (they shared one, under different limits)', async () => {
    // Before: one request on the basic route (limit 1) made every gold request (limit 100) a 429, and a POST emptied the GETs' bucket.
    const statuses = async (path: string, n: number, opts: { method?: 'POST'; headers?: Record<string, string> } = {}): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const res = await request(`${g.gw}${path}`, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, ...(opts.method === 'POST' ? { body: 'x' } : {}) });
        await res.body.dump();
        out.push(res.statusCode);
      }
      return out;
    };
    expect(await statuses('/tier/x', 2)).toEqual([200, 429]);
    expect(await statuses('/tier/x', 3, { headers: { 'x-tier': 'gold' } })).toEqual([200, 200, 200]);
    expect(await statuses('/api/x', 2, { method: 'POST' })).toEqual([200, 429]);
    expect(await statuses('/api/x', 3)).toEqual([200, 200, 200]);
  });

  it('forwards a valid traceparent (sampled or not) with its tracestate, and replaces an invalid one, dropping its tracestate (W3C Trace Context)', async () => {
    const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const sent = async (traceparent: string): Promise<[string, string | undefined]> => {
      const res = await get(`${g.gw}/items/1`, { traceparent, tracestate: 'congo=t61rcWkgMzE' });
      const seen = JSON.parse(res.headers['x-seen']!) as Record<string, string>;
      return [seen['traceparent']!, seen['tracestate']];
    };
    expect(await sent(valid)).toEqual([valid, 'congo=t61rcWkgMzE']);
    expect(await sent(valid.replace(/01$/, '00'))).toEqual([valid.replace(/01$/, '00'), 'congo=t61rcWkgMzE']);
    const invalid = {
      uppercase: valid.toUpperCase(),
      'version ff': valid.replace(/^00/, 'ff'),
      'zero trace id': `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`,
      'zero parent id': `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`,
      'short trace id': valid.replace('4736', '473'),
      'version 00 with more fields': `${valid}-x`,
      'two values': `${valid}, ${valid}`,
    };
    for (const [why, value] of Object.entries(invalid)) {
      const [traceparent, tracestate] = await sent(value);
      expect([traceparent.startsWith('00-4bf92f3577b34da6a3ce929d0e0e4736'), tracestate], why).toEqual([false, undefined]);
      expect(traceparent, why).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    }
  });

  it('writes one JSON line per request with status 499 for a client that left, the instance for a 502, route "none" for no route, and never a credential, even at trace level', async () => {
    const secret = { authorization: 'Bearer s3cret-token', cookie: 'sid=s3cret-cookie' };
    expect((await get(`${g.gw}/items/7`, { ...secret, 'x-request-id': 'probe-ok' })).status).toBe(200);
    expect((await get(`${g.gw}/down/x`, { ...secret, 'x-request-id': 'probe-502' })).status).toBe(502);
    expect((await get(`${g.gw}/nowhere/${Math.random()}`, { ...secret, 'x-request-id': 'probe-404' })).status).toBe(404);
    const aborted = new AbortController();
    const gone = request(`${g.gw}/items/hang`, { headers: { 'x-request-id': 'probe-499' }, signal: aborted.signal }).catch(() => undefined);
    await until(() => (hits.get('/items/hang') ?? 0) > 0);
    aborted.abort();
    await gone;
    await until(() => g.proc.lines.some((l) => l['reqId'] === 'probe-499'));
    const line = (id: string): Record<string, unknown> => g.proc.lines.find((l) => l['msg'] === 'access' && l['reqId'] === id)!;
    expect(line('probe-ok')).toMatchObject({ route: 'items', service: 'up', instance: up, status: 200, bytesOut: 'from /items/7'.length, headers: { authorization: '[redacted]', cookie: '[redacted]' } });
    expect(line('probe-502')).toMatchObject({ route: '/down/*', instance: 'http://127.0.0.1:1', status: 502 });
    expect(line('probe-404')).toMatchObject({ status: 404, attempts: 0 });
    expect(line('probe-404')['route']).toBeUndefined();
    expect(line('probe-499')).toMatchObject({ status: 499, end: 'aborted', route: 'items' });
    const out = g.proc.stdout();
    for (const text of out.split('\n').filter((t) => t !== '')) expect(() => JSON.parse(text), text.slice(0, 120)).not.toThrow();
    expect(out).not.toContain('s3cret');
    const metrics = (await get(`${g.admin}/metrics`)).body;
    expect(metrics).toMatch(/^rxgate_requests_total\{route="none",status="4xx"\} \d+$/m);
    expect(metrics).not.toContain('nowhere');
    expect(metrics).toMatch(/^rxgate_requests_total\{route="\/down\/\*",status="5xx"\} 1$/m);
  });

  it('serves a steady stream without one failure through 5 reloads that move a route between upstreams and a refused one, which names the key and is counted', async () => {
    const pool = new Pool(g.gw, { connections: 4 });
    const answers = new Map<string, number>();
    let stop = false;
    const stream = async (): Promise<void> => {
      while (!stop) {
        let key: string;
        try {
          const res = await pool.request({ path: '/swap/x', method: 'GET' });
          key = `${res.statusCode} ${(await res.body.text()).slice(0, 5)}`;
        } catch (err) {
          key = `failed: ${(err as Error).message}`;
        }
        answers.set(key, (answers.get(key) ?? 0) + 1);
      }
    };
    const streams = Array.from({ length: 4 }, stream);
    const outcomes: string[] = [];
    try {
      const count = async (): Promise<number> => [...answers.values()].reduce((a, b) => a + b, 0);
      for (const [service, extra] of [['other', ''], ['up', ''], ['other', ', timeouts: { total: soon }'], ['other', ''], ['up', ''], ['other', '']] as const) {
        const before = await count();
        await until(async () => await count() >= before + 20);
        const reloaded = await g.reload(config(service, extra));
        outcomes.push(reloaded.status === 200 ? 'applied' : reloaded.body);
      }
      const before = await count();
      await until(async () => await count() >= before + 20);
    } finally {
      stop = true;
      await Promise.all(streams);
      await pool.close();
    }
    expect(outcomes).toEqual(['applied', 'applied', expect.stringContaining('routes[6].timeouts.total'), 'applied', 'applied', 'applied']);
    expect([...answers.keys()].sort()).toEqual(['200 from ', '200 other']);
    expect((await get(`${g.gw}/swap/x`)).body).toBe('other');
    // The limiter's state is kept: the basic route's one request of the hour is still spent.
    expect((await get(`${g.gw}/tier/x`)).status).toBe(429);
    expect(await metric(g.admin, 'rxgate_reloads_total{outcome="refused"')).toBe(1);
    expect(await metric(g.admin, 'rxgate_reloads_total{outcome="applied"')).toBe(5);
    await g.proc.logged('config reload refused; the old config keeps serving');
  });
});

