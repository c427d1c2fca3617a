import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { redisUrl } from '../support/redis.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { type Answer, get } from '../support/answer.ts';

/**
 * Rate limits through real gateways built from YAML: the `rateLimit` keys,
 * the 429 and its headers, the key kinds, and one budget shared by two
 * gateway instances through Redis.
 */

const SECRET = 'integration-secret-at-least-32-bytes-long!';
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function countingUpstream(): Promise<TestUpstream & { hits: () => number }> {
  let hits = 0;
  const up = await startUpstream((req, res) => {
    req.resume();
    hits++;
    res.end('ok');
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { hits: () => hits });
}

async function gateway(yaml: string): Promise<{ url: string }> {
  // These tests read the public /__rxgate/metrics (opt-in).
  const gw = await startGatewayFromYaml(`metrics: { public: true }\n${yaml}`);
  cleanups.push(() => gw.close());
  return gw;
}

const remaining = (a: Answer): number => Number(a.headers['ratelimit-remaining']);

function expectRateLimitHeaders(a: Answer, limit: number): void {
  expect(a.headers['ratelimit-limit']).toBe(String(limit));
  expect(a.headers['ratelimit-remaining']).toMatch(/^\d+$/);
  expect(a.headers['ratelimit-reset']).toMatch(/^\d+$/);
}

async function token(sub: string): Promise<string> {
  return new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
}

describe('rate limits from YAML', () => {
  it('refuses the request after the burst with 429 RATE_LIMITED, retry-after and the ratelimit headers', async () => {
    const up = await countingUpstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    rateLimit: { limit: 3, window: 1m, burst: 3 }
`);
    const answers: Answer[] = [];
    for (let i = 0; i < 4; i++) answers.push(await get(`${gw.url}/orders/1`));

    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
    for (const a of answers) expectRateLimitHeaders(a, 3);
    expect(answers.map(remaining)).toEqual([2, 1, 0, 0]);
    const refused = answers[3]!;
    expect(JSON.parse(refused.body)).toEqual({ error: { code: 'RATE_LIMITED', message: 'rate limit exceeded' } });
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(up.hits()).toBe(3);
    const metrics = (await get(`${gw.url}/__rxgate/metrics`)).body;
    expect(metrics).toMatch(/^rxgate_rate_limited_total\{route="\/orders\/\*"\} 1$/m);
  });

  it('leaves the ratelimit headers off admitted responses with headers: false, but not off the 429', async () => {
    const up = await countingUpstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    rateLimit: { limit: 1, window: 1m, headers: false }
`);
    const ok = await get(`${gw.url}/orders/1`);
    expect(ok.status).toBe(200);
    expect(ok.headers['ratelimit-remaining']).toBeUndefined();
    const refused = await get(`${gw.url}/orders/1`);
    expect(refused.status).toBe(429);
    expectRateLimitHeaders(refused, 1);
  });

  it('counts each x-api-key separately when keyed by header', async () => {
    const up = await countingUpstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    rateLimit: { limit: 2, window: 1m, key: { header: x-api-key } }
`);
    const a = (): Promise<Answer> => get(`${gw.url}/orders/1`, { 'x-api-key': 'client-a' });
    const b = (): Promise<Answer> => get(`${gw.url}/orders/1`, { 'x-api-key': 'client-b' });
    expect((await a()).status).toBe(200);
    expect((await a()).status).toBe(200);
    expect((await a()).status).toBe(429);
    const first = await b();
    expect(first.status).toBe(200);
    expect(remaining(first)).toBe(1);
    expect((await b()).status).toBe(200);
    expect((await b()).status).toBe(429);
    expect(up.hits()).toBe(4);
  });

  it('counts each token subject separately when keyed by the sub claim', async () => {
    const up = await countingUpstream();
    const gw = await gateway(`
auth: { secret: "${SECRET}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    service: api
    auth: required
    rateLimit: { limit: 2, window: 1m, key: { claim: sub } }
`);
    const alice = { authorization: `Bearer ${await token('alice')}` };
    const bob = { authorization: `Bearer ${await token('bob')}` };
    expect((await get(`${gw.url}/orders/1`, alice)).status).toBe(200);
    expect((await get(`${gw.url}/orders/1`, alice)).status).toBe(200);
    expect((await get(`${gw.url}/orders/1`, alice)).status).toBe(429);
    // Same client IP, different subject: a budget of its own.
    expect((await get(`${gw.url}/orders/1`, bob)).status).toBe(200);
    // A request without a token never reaches the limiter.
    expect((await get(`${gw.url}/orders/1`)).status).toBe(401);
    expect(up.hits()).toBe(3);
  });
});

const url = redisUrl();

describe.skipIf(!url)('rate limits shared through Redis', () => {
  /**
   * Waits until the gateway's Redis client is connected: with no offline
   * queue, checks before that fall back and every answer looks fresh. Two
   * requests from one throw-away key show a falling remaining count only when
   * Redis answered both.
   */
  async function untilRedisCounts(gwUrl: string): Promise<void> {
    await vi.waitFor(async () => {
      const probe = { 'x-client': `probe-${randomUUID()}` };
      const first = await get(`${gwUrl}/orders/1`, probe);
      const second = await get(`${gwUrl}/orders/1`, probe);
      expect(remaining(second)).toBe(remaining(first) - 1);
    }, { timeout: 5000, interval: 50 });
  }

  it('admits exactly the limit across two gateway instances sharing one Redis', async () => {
    const up = await countingUpstream();
    const yaml = `
redis: { url: "${url}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - path: /orders/*
    name: orders-${randomUUID()}
    service: api
    rateLimit: { limit: 4, window: 1m, burst: 4, key: { header: x-client }, store: redis }
`;
    const one = await gateway(yaml);
    const two = await gateway(yaml);
    await untilRedisCounts(one.url);
    await untilRedisCounts(two.url);

    const client = { 'x-client': 'shared-client' };
    const answers: Answer[] = [];
    for (let i = 0; i < 8; i++) answers.push(await get(`${(i % 2 === 0 ? one : two).url}/orders/1`, client));

    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 429, 429, 429, 429]);
    expect(answers.slice(0, 4).map(remaining)).toEqual([3, 2, 1, 0]);
    for (const a of answers) expectRateLimitHeaders(a, 4);
    expect(JSON.parse(answers[4]!.body).error.code).toBe('RATE_LIMITED');
  });

  it('keeps separate budgets for routes with different ids on the same Redis', async () => {
    const up = await countingUpstream();
    const id = randomUUID();
    const gw = await gateway(`
redis: { url: "${url}" }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /orders/*, service: api, rateLimit: { id: "a-${id}", limit: 2, window: 1m, key: { header: x-client }, store: redis } }
  - { path: /things/*, service: api, rateLimit: { id: "b-${id}", limit: 2, window: 1m, key: { header: x-client }, store: redis } }
`);
    await untilRedisCounts(gw.url);
    const client = { 'x-client': 'c' };
    const statuses = async (path: string): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < 3; i++) out.push((await get(`${gw.url}${path}`, client)).status);
      return out;
    };
    expect(await statuses('/orders/1')).toEqual([200, 200, 429]);
    expect(await statuses('/things/1')).toEqual([200, 200, 429]);
  });
});
