import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compose } from '../../lib/compose.ts';
import { circuitBreaker } from '../../lib/stages/circuit-breaker/circuit-breaker.ts';
import { retry, type RetryOptions } from '../../lib/stages/retry/retry.ts';
import { timeout } from '../../lib/stages/timeout/timeout.ts';
import { RetryBudget } from '../../lib/stages/retry/budget.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import type { Handler } from '../../lib/types.ts';
import { openSocket, patternChunk } from '../support/http.ts';
import { startGateway, startUpstream } from '../support/servers.ts';

/** What one upstream instance saw of one request. */
interface Hit {
  instance: string;
  method: string;
  url: string;
  body: Buffer;
  /** The connection went away before the response was finished. */
  aborted: boolean;
}

type Behaviour = (hit: Hit, req: IncomingMessage, res: ServerResponse) => void;

const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  // Gateways were pushed after their upstreams: close in reverse order.
  for (const close of closers.splice(0).reverse()) await close();
});

/**
 * A loopback upstream that records every request (with its whole body) in
 * `hits`, then lets `behave` answer, fail, reset or hang.
 */
async function flakyUpstream(instance: string, hits: Hit[], behave: Behaviour): Promise<string> {
  const up = await startUpstream((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const hit: Hit = { instance, method: req.method!, url: req.url!, body: Buffer.concat(parts), aborted: false };
      hits.push(hit);
      res.on('close', () => { if (!res.writableFinished) hit.aborted = true; });
      behave(hit, req, res);
    });
  });
  closers.push(() => up.close());
  return up.url;
}

/** Fails with `failure` on the first `k` requests it sees, answers 200 afterwards. */
function failsThenRecovers(k: number, failure: '503' | 'reset'): Behaviour {
  let seen = 0;
  return (hit, req, res) => {
    if (++seen <= k) {
      if (failure === 'reset') req.socket.destroy();
      else res.writeHead(503, { 'content-type': 'text/plain' }).end('down');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok from ${hit.instance}`);
  };
}

// The statuses are listed: by default only a missing response is retried (see safe-defaults.test.ts).
const fast = { base: '1ms', cap: '5ms', statuses: [502, 503, 504] } as const;

/** The stack the resilience docs recommend, around `forward`. */
async function gatewayFor(urls: string[], retryOptions: RetryOptions, extra: { breaker?: boolean } = {}) {
  const svc = new Service('flaky', { upstreams: urls, timeout: '5s' });
  const policy = retry({ ...fast, ...retryOptions });
  const handler: Handler = compose(
    timeout({ head: '5s' }),
    policy,
    extra.breaker === true ? circuitBreaker({ consecutiveFailures: 100 }) : null,
    timeout({ head: '2s' }),
  )(forward(svc));
  const gw = await startGateway([{ path: '/*', handler }], { services: [svc], publicMetrics: true });
  closers.push(() => gw.close());
  return { gw, policy };
}

describe('retry through the gateway against a flaky upstream', () => {
  it.each(['503', 'reset'] as const)('succeeds on the third attempt when the upstream fails twice with %s, and says so in x-gateway-attempts', async (failure) => {
    const hits: Hit[] = [];
    const url = await flakyUpstream('a', hits, failsThenRecovers(2, failure));
    const { gw, policy } = await gatewayFor([url], { attempts: 3, budget: false }, { breaker: true });

    const res = await request(`${gw.url}/items`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok from a');
    expect(res.headers['x-gateway-attempts']).toBe('3');
    expect(hits.map((h) => h.url)).toEqual(['/items', '/items', '/items']);
    expect(policy.counts).toEqual({ requests: 1, retries: 2, refused: 0 });
  });

  it('gives up after the configured attempts and answers the last failure', async () => {
    const hits: Hit[] = [];
    const url = await flakyUpstream('a', hits, failsThenRecovers(5, '503'));
    const { gw } = await gatewayFor([url], { attempts: 3, budget: false });

    const res = await request(`${gw.url}/items`);
    expect(res.statusCode).toBe(503);
    expect(await res.body.text()).toBe('down');
    expect(res.headers['x-gateway-attempts']).toBe('3');
    expect(hits).toHaveLength(3);
  });

  it('sends the retry to the other instance when one instance resets the connection', async () => {
    const hits: Hit[] = [];
    const resets: Behaviour = (_hit, req) => req.socket.destroy();
    const answers: Behaviour = (hit, _req, res) => res.end(`ok from ${hit.instance}`);
    const a = await flakyUpstream('a', hits, resets);
    const b = await flakyUpstream('b', hits, answers);
    const { gw } = await gatewayFor([a, b], { attempts: 3, budget: false });

    const res = await request(`${gw.url}/items`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok from b');
    expect(res.headers['x-gateway-attempts']).toBe('2');
    expect(hits.map((h) => h.instance)).toEqual(['a', 'b']);
  });

  it('avoids the failed instance even when round-robin would pick it again', async () => {
    // /first lands on one instance and fails only once /second has taken the
    // other one, so plain round-robin would send the retry back to the
    // instance that just failed; `avoid` must steer it away.
    const hits: Hit[] = [];
    let releaseFirst: (() => void) | null = null;
    const behave: Behaviour = (hit, _req, res) => {
      const firstHits = hits.filter((h) => h.url === '/first');
      if (hit.url === '/first' && firstHits.length === 1) {
        releaseFirst = () => res.writeHead(503).end('down');
        return;
      }
      if (hit.url === '/second') releaseFirst?.();
      res.end(`ok from ${hit.instance}`);
    };
    const a = await flakyUpstream('a', hits, behave);
    const b = await flakyUpstream('b', hits, behave);
    const { gw } = await gatewayFor([a, b], { attempts: 3, budget: false });

    const first = request(`${gw.url}/first`);
    await vi.waitFor(() => expect(hits).toHaveLength(1));
    const second = await request(`${gw.url}/second`);
    expect(second.statusCode).toBe(200);
    await second.body.dump();
    const res = await first;
    expect(res.statusCode).toBe(200);
    await res.body.dump();

    const firstHits = hits.filter((h) => h.url === '/first');
    const secondHit = hits.find((h) => h.url === '/second')!;
    expect(secondHit.instance).not.toBe(firstHits[0]!.instance);
    expect(firstHits).toHaveLength(2);
    expect(firstHits[1]!.instance).not.toBe(firstHits[0]!.instance);
    expect(res.headers['x-gateway-attempts']).toBe('2');
  });
});

describe('retry and request bodies', () => {
  it.each(['503', 'reset'] as const)('does not retry a POST by default: one %s reaches the client and the upstream saw one request', async (failure) => {
    const hits: Hit[] = [];
    const url = await flakyUpstream('a', hits, failsThenRecovers(1, failure));
    const { gw, policy } = await gatewayFor([url], { attempts: 3, budget: false });

    const res = await request(`${gw.url}/orders`, { method: 'POST', body: '{"qty":1}', headers: { 'content-type': 'application/json' } });
    if (failure === '503') {
      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toBe('down');
      expect(res.headers['x-gateway-attempts']).toBe('1');
    } else {
      expect(res.statusCode).toBe(502);
      expect(await res.body.json()).toMatchObject({ error: { code: 'BAD_GATEWAY' } });
    }
    expect(hits).toHaveLength(1);
    expect(hits[0]!.body.toString()).toBe('{"qty":1}');
    expect(policy.counts.retries).toBe(0);
  });

  it.each(['503', 'reset'] as const)('replays a small POST body byte-exact when the route opts in to POST retries (first attempt: %s)', async (failure) => {
    const hits: Hit[] = [];
    const fail = failsThenRecovers(1, failure);
    const url = await flakyUpstream('a', hits, (hit, req, res) => {
      if (hits.length === 1) return fail(hit, req, res);
      res.end(createHash('sha256').update(hit.body).digest('hex'));
    });
    const { gw } = await gatewayFor([url], { attempts: 3, methods: ['POST'], budget: false });
    const payload = Buffer.concat([patternChunk(0, 8 * 1024), patternChunk(1, 8 * 1024), Buffer.from([0, 13, 10, 255])]);

    const res = await request(`${gw.url}/orders`, { method: 'POST', body: payload, headers: { 'content-type': 'application/octet-stream' } });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe(createHash('sha256').update(payload).digest('hex'));
    expect(res.headers['x-gateway-attempts']).toBe('2');
    expect(hits).toHaveLength(2);
    for (const h of hits) {
      expect(h.method).toBe('POST');
      expect(h.body.equals(payload)).toBe(true);
    }
  });

  it('does not retry an opted-in POST whose body is larger than bufferLimit, and streams it once', async () => {
    const hits: Hit[] = [];
    const url = await flakyUpstream('a', hits, failsThenRecovers(1, 'reset'));
    const { gw } = await gatewayFor([url], { attempts: 3, methods: ['POST'], bufferLimit: 1024, budget: false });
    const payload = patternChunk(7, 4096);

    const res = await request(`${gw.url}/orders`, { method: 'POST', body: payload });
    expect(res.statusCode).toBe(502);
    expect(await res.body.json()).toMatchObject({ error: { code: 'BAD_GATEWAY' } });
    expect(hits).toHaveLength(1);
    expect(hits[0]!.body.equals(payload)).toBe(true);
  });

  it('does not retry an opted-in POST with a chunked body of unknown length', async () => {
    const hits: Hit[] = [];
    const url = await flakyUpstream('a', hits, failsThenRecovers(1, '503'));
    const { gw } = await gatewayFor([url], { attempts: 3, methods: ['POST'], budget: false });

    const res = await request(`${gw.url}/orders`, { method: 'POST', body: Readable.from([Buffer.from('part one;'), Buffer.from('part two')]) });
    expect(res.statusCode).toBe(503);
    await res.body.dump();
    expect(res.headers['x-gateway-attempts']).toBe('1');
    expect(hits).toHaveLength(1);
    expect(hits[0]!.body.toString()).toBe('part one;part two');
  });
});

describe('retry and client aborts', () => {
  it('never contacts the upstream when the client goes away while its opted-in POST body is being buffered', async () => {
    const hits: Hit[] = [];
    const url = await flakyUpstream('a', hits, (_hit, _req, res) => res.end('ok'));
    const { gw, policy } = await gatewayFor([url], { attempts: 3, methods: ['POST'], budget: false });

    const client = await openSocket(gw.url);
    client.write('POST /orders HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n');
    client.write('x'.repeat(100));
    await vi.waitFor(() => expect(policy.counts.requests).toBe(1));
    client.destroy();
    await vi.waitFor(async () => {
      const metrics = await request(`${gw.url}/__rxgate/metrics`);
      expect(await metrics.body.text()).toMatch(/^rxgate_client_aborts_total 1$/m);
    });

    const next = await request(`${gw.url}/after`);
    expect(next.statusCode).toBe(200);
    await next.body.dump();
    expect(hits.map((h) => h.url)).toEqual(['/after']);
  });
});

describe('the retry budget through the gateway', () => {
  it('bounds the retries many failing requests make, and counts the refused ones', async () => {
    const hits: Hit[] = [];
    const url = await flakyUpstream('a', hits, (_hit, _req, res) => res.writeHead(503).end('down'));
    const clock = { now: () => 1_000 }; // every request in the same window slice
    // No concurrency floor: this checks the ratio.
    const budget = new RetryBudget({ ratio: 0.2, minRetries: 3, minConcurrent: 0, window: '10s', clock });
    let refusedEvents = 0;
    const { gw, policy } = await gatewayFor([url], { attempts: 3, budget, onRefused: () => { refusedEvents++; } });

    const n = 20;
    const responses = await Promise.all(Array.from({ length: n }, async (_, i) => {
      const res = await request(`${gw.url}/r/${i}`);
      await res.body.dump();
      return { status: res.statusCode, attempts: Number(res.headers['x-gateway-attempts']) };
    }));

    expect(responses.every((r) => r.status === 503)).toBe(true);
    const allowance = 3 + 0.2 * n;
    expect(policy.counts.requests).toBe(n);
    expect(policy.counts.retries).toBeLessThanOrEqual(allowance);
    expect(hits.length).toBeLessThanOrEqual(n + allowance);
    expect(hits.length).toBe(n + policy.counts.retries);
    expect(responses.reduce((sum, r) => sum + r.attempts, 0)).toBe(hits.length);
    // Without a budget 20 requests × 3 attempts would be 60 hits: some retries were refused.
    expect(policy.counts.refused).toBeGreaterThan(0);
    expect(refusedEvents).toBe(policy.counts.refused);
    expect(budget.counts.refused).toBe(policy.counts.refused);
    expect(budget.counts.retries).toBe(policy.counts.retries);
  });
});
