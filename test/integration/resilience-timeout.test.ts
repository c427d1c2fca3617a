import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compose } from '../../lib/compose.ts';
import { circuitBreaker } from '../../lib/stages/circuit-breaker/circuit-breaker.ts';
import { retry } from '../../lib/stages/retry/retry.ts';
import { timeout } from '../../lib/stages/timeout/timeout.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { startGateway, startUpstream } from '../support/servers.ts';

/** What the upstream saw of one request. */
interface Hit {
  url: string;
  /** The connection went away before the response was finished: the gateway aborted it. */
  aborted: boolean;
}

const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/**
 * An upstream that hangs (never answers) on the requests `hangs(n)` picks,
 * n being the 1-based request count, and answers the others; behind the
 * documented stack with the given total and per-attempt head timeouts.
 */
async function setup(o: { hangs: (n: number) => boolean; total: string; perAttempt: string; attempts: number }) {
  const hits: Hit[] = [];
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    const hit: Hit = { url: req.url!, aborted: false };
    hits.push(hit);
    res.on('close', () => { if (!res.writableFinished) hit.aborted = true; });
    req.resume();
    if (o.hangs(hits.length)) return;
    res.end(`answered request ${hits.length}`);
  });
  closers.push(() => up.close());
  const svc = new Service('slow', { upstreams: [up.url], timeout: '5s' });
  const policy = retry({ attempts: o.attempts, base: '1ms', cap: '5ms', budget: false });
  const handler = compose(
    timeout({ head: o.total }),
    policy,
    circuitBreaker({ consecutiveFailures: 100 }),
    timeout({ head: o.perAttempt }),
  )(forward(svc));
  const gw = await startGateway([{ path: '/*', handler }], { services: [svc] });
  closers.push(() => gw.close());
  return { hits, gw, policy };
}

describe('timeouts through the gateway against a hanging upstream', () => {
  it('answers 504 GATEWAY_TIMEOUT once every attempt timed out, and aborts each upstream request', async () => {
    const { hits, gw, policy } = await setup({ hangs: () => true, total: '5s', perAttempt: '150ms', attempts: 3 });

    const res = await request(`${gw.url}/slow`);
    expect(res.statusCode).toBe(504);
    expect(res.headers['content-type']).toBe('application/json');
    const body = await res.body.json() as { error: { code: string; message: string } };
    expect(body.error.code).toBe('GATEWAY_TIMEOUT');
    expect(body.error.message).toContain('150ms');
    expect(hits).toHaveLength(3);
    expect(policy.counts.retries).toBe(2);
    // Each timed-out attempt was cancelled: the upstream saw its connection close.
    await vi.waitFor(() => expect(hits.map((h) => h.aborted)).toEqual([true, true, true]));
  });

  it('abandons a hung first attempt and succeeds on the retry', async () => {
    const { hits, gw } = await setup({ hangs: (n) => n === 1, total: '5s', perAttempt: '150ms', attempts: 3 });

    const res = await request(`${gw.url}/slow`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('answered request 2');
    expect(res.headers['x-gateway-attempts']).toBe('2');
    expect(hits).toHaveLength(2);
    await vi.waitFor(() => expect(hits[0]!.aborted).toBe(true));
    expect(hits[1]!.aborted).toBe(false);
  });

  it('bounds all attempts together with the total timeout, aborting the attempt under way', async () => {
    const attempts = 10;
    const { hits, gw } = await setup({ hangs: () => true, total: '400ms', perAttempt: '150ms', attempts });

    const res = await request(`${gw.url}/slow`);
    expect(res.statusCode).toBe(504);
    const body = await res.body.json() as { error: { code: string; message: string } };
    expect(body.error.code).toBe('GATEWAY_TIMEOUT');
    // The total limit answered, not the last per-attempt one…
    expect(body.error.message).toContain('400ms');
    // …after more than one attempt, long before all ten were made.
    expect(hits.length).toBeGreaterThan(1);
    expect(hits.length).toBeLessThan(attempts);
    await vi.waitFor(() => expect(hits.every((h) => h.aborted)).toBe(true));
  });

  it('applies the head timeout to the head only: a slow body after a quick head is not cut', async () => {
    // The upstream sends its head at once and the rest of the body only when
    // the test says so; the test says so once the per-attempt limit is long past
    // (observed on the gateway's own 504 for a parallel request, not a sleep).
    const upstreamBody: { finish: (() => void) | null } = { finish: null };
    const hits: Hit[] = [];
    const up = await startUpstream((req, res) => {
      const hit: Hit = { url: req.url!, aborted: false };
      hits.push(hit);
      res.on('close', () => { if (!res.writableFinished) hit.aborted = true; });
      req.resume();
      if (req.url === '/hang') return;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('head and first part;');
      upstreamBody.finish = () => res.end('last part');
    });
    closers.push(() => up.close());
    const svc = new Service('slow', { upstreams: [up.url], timeout: '5s' });
    const handler = compose(
      timeout({ head: '5s' }),
      retry({ attempts: 2, base: '1ms', cap: '5ms', budget: false }),
      circuitBreaker({ consecutiveFailures: 100 }),
      timeout({ head: '150ms' }),
    )(forward(svc));
    const gw = await startGateway([{ path: '/*', handler }], { services: [svc] });
    closers.push(() => gw.close());

    const res = await request(`${gw.url}/stream`);
    expect(res.statusCode).toBe(200);
    // Two per-attempt timeouts of 150ms each elapse on this request meanwhile.
    const hung = await request(`${gw.url}/hang`);
    expect(hung.statusCode).toBe(504);
    await hung.body.dump();
    expect(upstreamBody.finish).not.toBeNull();
    upstreamBody.finish!();
    expect(await res.body.text()).toBe('head and first part;last part');
    expect(hits.find((h) => h.url === '/stream')!.aborted).toBe(false);
  });
});
