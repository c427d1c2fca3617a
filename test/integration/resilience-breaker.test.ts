import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Breaker, type BreakerOptions, type BreakerTransition } from '../../lib/stages/circuit-breaker/breaker.ts';
import { compose } from '../../lib/compose.ts';
import { circuitBreaker, type CircuitFallback } from '../../lib/stages/circuit-breaker/circuit-breaker.ts';
import { failOnStatuses, type CallOutcome } from '../../lib/stages/circuit-breaker/outcome.ts';
import { retry, type RetryOptions } from '../../lib/stages/retry/retry.ts';
import { timeout } from '../../lib/stages/timeout/timeout.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import type { ServiceOptions } from '../../lib/upstream/service-options.ts';
import { systemRuntime } from '../../lib/runtime.ts';
import type { Handler, Policy } from '../../lib/types.ts';
import { openSocket } from '../support/http.ts';
import { startGateway, startUpstream } from '../support/servers.ts';

/** What the upstream saw of one request. */
interface Hit {
  url: string;
  /** The connection went away before the response was finished. */
  aborted: boolean;
}

type Mode = 'ok' | 'reset' | 'hang' | 404 | 500;

const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A breaker clock the test moves by hand: no real waiting for the reset timeout. */
function manualClock() {
  const clock = { t: 0, now: () => clock.t };
  return clock;
}

/**
 * An upstream whose behaviour the test switches with `up.mode` (per path when
 * `byPath` has an entry), and a gateway running the documented stack
 * `timeout(total) → retry → circuitBreaker → timeout(perAttempt) → forward`
 * around it, with a breaker on an injected clock.
 */
async function setup(options: {
  breaker?: BreakerOptions; retry?: RetryOptions; perAttempt?: string; fallback?: CircuitFallback; isFailure?: (o: CallOutcome) => boolean;
} = {}) {
  const hits: Hit[] = [];
  const state = { mode: 'ok' as Mode, byPath: {} as Record<string, Mode> };
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    const hit: Hit = { url: req.url!, aborted: false };
    hits.push(hit);
    res.on('close', () => { if (!res.writableFinished) hit.aborted = true; });
    req.resume();
    const mode = state.byPath[req.url!] ?? state.mode;
    if (mode === 'reset') req.socket.destroy();
    else if (mode === 'hang') return;
    else if (mode === 'ok') res.end(`ok ${req.url}`);
    else res.writeHead(mode, { 'content-type': 'text/plain' }).end(`status ${mode}`);
  });
  closers.push(() => up.close());

  const clock = manualClock();
  const breaker = new Breaker({ consecutiveFailures: 3, resetTimeout: '30s', clock, ...options.breaker });
  const transitions: string[] = [];
  const sub = breaker.state$.subscribe((t: BreakerTransition) => transitions.push(`${t.from}→${t.to}`));
  closers.push(async () => sub.unsubscribe());
  const policy = retry({ attempts: 3, base: '1ms', cap: '5ms', budget: false, ...options.retry });
  const svc = new Service('flaky', { upstreams: [up.url], timeout: '5s' });
  const handler = compose(
    timeout({ head: '5s' }),
    policy,
    circuitBreaker(breaker, {
      ...(options.fallback === undefined ? {} : { fallback: options.fallback }),
      ...(options.isFailure === undefined ? {} : { isFailure: options.isFailure }),
    }),
    timeout({ head: options.perAttempt ?? '2s' }),
  )(forward(svc));
  const gw = await startGateway([{ path: '/*', handler }], { services: [svc] });
  closers.push(() => gw.close());
  return { hits, state, clock, breaker, transitions, policy, gw };
}

async function get(url: string) {
  const res = await request(url);
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as { error: { code: string } } };
}

describe('circuit breaker through the gateway', () => {
  it('answers 502 BAD_GATEWAY once every attempt met a reset connection', async () => {
    const { hits, state, gw } = await setup({ breaker: { consecutiveFailures: 10 } });
    state.mode = 'reset';

    const res = await get(`${gw.url}/items`);
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.json().error.code).toBe('BAD_GATEWAY');
    expect(hits).toHaveLength(3);
  });

  it('trips after consecutive failures, then answers 503 CIRCUIT_OPEN with retry-after without touching the upstream', async () => {
    const { hits, state, clock, breaker, transitions, gw } = await setup();
    state.mode = 'reset';

    const first = await get(`${gw.url}/items`);
    expect(first.status).toBe(502);
    expect(hits).toHaveLength(3);
    expect(breaker.state).toBe('open');
    expect(transitions).toEqual(['closed→open']);

    for (let i = 0; i < 3; i++) {
      const res = await get(`${gw.url}/items`);
      expect(res.status).toBe(503);
      expect(res.json().error.code).toBe('CIRCUIT_OPEN');
      expect(res.headers['retry-after']).toBe('30');
    }
    clock.t += 10_000;
    const later = await get(`${gw.url}/items`);
    expect(later.status).toBe(503);
    expect(later.headers['retry-after']).toBe('20');
    expect(hits).toHaveLength(3);
    expect(breaker.counts.rejected).toBe(4);
  });

  it('lets a probe through after the reset timeout and closes when it succeeds', async () => {
    const { hits, state, clock, breaker, transitions, gw } = await setup();
    state.mode = 'reset';
    expect((await get(`${gw.url}/items`)).status).toBe(502);
    expect((await get(`${gw.url}/items`)).status).toBe(503);
    expect(hits).toHaveLength(3);

    state.mode = 'ok';
    clock.t += 29_999;
    expect((await get(`${gw.url}/items`)).status).toBe(503);
    expect(hits).toHaveLength(3);

    clock.t += 1;
    const probe = await get(`${gw.url}/items`);
    expect(probe.status).toBe(200);
    expect(probe.text).toBe('ok /items');
    expect(probe.headers['x-gateway-attempts']).toBe('1');
    expect(hits).toHaveLength(4);
    expect(breaker.state).toBe('closed');
    expect(transitions).toEqual(['closed→open', 'open→half-open', 'half-open→closed']);

    const after = await get(`${gw.url}/items`);
    expect(after.status).toBe(200);
    expect(hits).toHaveLength(5);
  });

  it('re-opens with a doubled reset timeout when the probe fails, and retrying stops at the open breaker', async () => {
    const { hits, state, clock, breaker, transitions, gw } = await setup();
    state.mode = 'reset';
    expect((await get(`${gw.url}/items`)).status).toBe(502);

    clock.t += 30_000;
    const probe = await get(`${gw.url}/items`);
    // The probe (attempt 1) failed and re-opened the breaker; attempt 2 met the open breaker.
    expect(probe.status).toBe(503);
    expect(probe.json().error.code).toBe('CIRCUIT_OPEN');
    expect(probe.headers['retry-after']).toBe('60');
    expect(hits).toHaveLength(4);
    expect(breaker.state).toBe('open');
    expect(transitions).toEqual(['closed→open', 'open→half-open', 'half-open→open']);
  });

  it('counts per-attempt timeouts as failures and aborts each timed-out upstream request', async () => {
    const { hits, state, breaker, gw } = await setup({ breaker: { consecutiveFailures: 2 }, perAttempt: '150ms' });
    state.mode = 'hang';

    const res = await get(`${gw.url}/slow`);
    // Two timeouts tripped it; the third attempt met the open breaker.
    expect(res.status).toBe(503);
    expect(res.json().error.code).toBe('CIRCUIT_OPEN');
    expect(breaker.state).toBe('open');
    expect(hits).toHaveLength(2);
    await vi.waitFor(() => expect(hits.every((h) => h.aborted)).toBe(true));
  });

  it('does not count upstream responses by default, 5xx included', async () => {
    const { hits, state, breaker, gw } = await setup({ breaker: { consecutiveFailures: 2 } });
    state.mode = 500;
    for (let i = 0; i < 5; i++) expect((await get(`${gw.url}/broken/${i}`)).status).toBe(500);
    state.mode = 404;
    for (let i = 0; i < 3; i++) expect((await get(`${gw.url}/missing/${i}`)).status).toBe(404);
    expect(hits).toHaveLength(8);
    expect(breaker.state).toBe('closed');
    expect(breaker.counts.open).toBe(0);
  });

  it('does not count a 4xx as a failure when 5xx statuses are counted', async () => {
    const { hits, state, breaker, gw } = await setup({ breaker: { consecutiveFailures: 2 }, isFailure: failOnStatuses([500, 502, 503, 504]) });
    state.mode = 404;
    for (let i = 0; i < 5; i++) {
      const res = await get(`${gw.url}/missing/${i}`);
      expect(res.status).toBe(404);
      expect(res.text).toBe('status 404');
    }
    expect(hits).toHaveLength(5);
    expect(breaker.state).toBe('closed');
    expect(breaker.counts.open).toBe(0);

    // A 4xx between two 5xx also breaks the run of consecutive failures.
    state.byPath = { '/a': 500, '/b': 404, '/c': 500 };
    expect((await get(`${gw.url}/a`)).status).toBe(500);
    expect((await get(`${gw.url}/b`)).status).toBe(404);
    expect((await get(`${gw.url}/c`)).status).toBe(500);
    expect(breaker.state).toBe('closed');
    expect(hits).toHaveLength(8);

    // …while two 5xx in a row do trip it: the rule is live.
    state.byPath = {};
    state.mode = 500;
    expect((await get(`${gw.url}/d`)).status).toBe(500);
    expect(breaker.state).toBe('open');
  });

  it('does not count a client abort as a failure', async () => {
    const { hits, state, breaker, transitions, gw } = await setup({ breaker: { consecutiveFailures: 1 } });
    state.byPath = { '/hang': 'hang' };

    const client = await openSocket(gw.url);
    client.write('GET /hang HTTP/1.1\r\nHost: gw\r\n\r\n');
    await vi.waitFor(() => expect(hits).toHaveLength(1));
    client.destroy();
    await vi.waitFor(() => expect(hits[0]!.aborted).toBe(true));

    expect(breaker.state).toBe('closed');
    expect(transitions).toEqual([]);
    const res = await get(`${gw.url}/ok`);
    expect(res.status).toBe(200);
    expect(hits).toHaveLength(2);
  });

  it('frees the half-open probe slot when the probing client goes away', async () => {
    const { hits, state, clock, breaker, gw } = await setup({ breaker: { probes: 1 } });
    state.byPath = { '/hang': 'hang' };
    breaker.trip();
    clock.t += 30_000;

    const client = await openSocket(gw.url);
    client.write('GET /hang HTTP/1.1\r\nHost: gw\r\n\r\n');
    await vi.waitFor(() => expect(hits).toHaveLength(1));
    // While the probe is out, everyone else is turned away at once.
    const busy = await get(`${gw.url}/ok`);
    expect(busy.status).toBe(503);
    expect(busy.json().error.code).toBe('CIRCUIT_OPEN');
    expect(hits).toHaveLength(1);

    client.destroy();
    await vi.waitFor(() => expect(hits[0]!.aborted).toBe(true));
    expect(breaker.state).toBe('half-open');
    const res = await get(`${gw.url}/ok`);
    expect(res.status).toBe(200);
    expect(hits).toHaveLength(2);
    expect(breaker.state).toBe('closed');
  });

  it('does not retry the fallback answer of an open breaker', async () => {
    const { hits, breaker, policy, gw } = await setup({
      fallback: { status: 503, headers: { 'content-type': 'application/json' }, body: '{"maintenance":true}' },
    });
    breaker.trip();

    const res = await get(`${gw.url}/items`);
    expect(res.status).toBe(503);
    expect(res.text).toBe('{"maintenance":true}');
    expect(res.headers['retry-after']).toBe('30');
    expect(hits).toHaveLength(0);
    // Failing fast is the point of an open breaker: no backoff, no second try, no retry budget spent.
    expect(res.headers['x-gateway-attempts']).toBe('1');
    expect(policy.counts.retries).toBe(0);
  });
});

/** Two instances, `a` and `b`, each answering as its own `modes` entry says. */
async function twoInstances(modes: Record<'a' | 'b', Mode>, options: Partial<ServiceOptions> = {}) {
  const hits: (Hit & { instance: 'a' | 'b' })[] = [];
  const origins = {} as Record<'a' | 'b', string>;
  for (const instance of ['a', 'b'] as const) {
    const up = await startUpstream((req, res) => {
      const hit = { instance, url: req.url!, aborted: false };
      hits.push(hit);
      res.on('close', () => { if (!res.writableFinished) hit.aborted = true; });
      req.resume();
      const mode = modes[instance];
      if (mode === 'reset') req.socket.destroy();
      else if (mode === 'ok') res.end(`ok from ${instance}`);
      else if (mode !== 'hang') res.writeHead(mode).end();
    });
    closers.push(() => up.close());
    origins[instance] = up.url;
  }
  // Round-robin, so the order instances are tried in is known.
  const svc = new Service('pair', { upstreams: [origins.a, origins.b], timeout: '5s', balancer: 'round-robin', ...options });
  return { hits, origins, svc };
}

async function gatewayWith(svc: Service, handler: Handler) {
  const gw = await startGateway([{ path: '/*', handler }], { services: [svc] });
  closers.push(() => gw.close());
  return gw;
}

const stack = (...inner: Policy[]) => compose(
  timeout({ head: '5s' }),
  retry({ attempts: 3, base: '1ms', cap: '5ms', budget: false }),
  ...inner,
  timeout({ head: '2s' }),
);

describe('per-instance breaking is outlier ejection', () => {
  it('takes a failing instance out of rotation without touching it, and lets it back after its ejection', async () => {
    const modes = { a: 'reset' as Mode, b: 'ok' as Mode };
    const clock = manualClock();
    const { hits, svc } = await twoInstances(modes, { ejectAfter: 1, ejectFor: '30s', runtime: { ...systemRuntime, now: () => clock.now() } });
    const gw = await gatewayWith(svc, stack()(forward(svc)));

    const first = await get(`${gw.url}/items`);
    expect(first.status).toBe(200);
    expect(first.text).toBe('ok from b');
    expect(first.headers['x-gateway-attempts']).toBe('2');
    expect(hits.map((h) => h.instance)).toEqual(['a', 'b']);
    expect(svc.upstreams[0]!.outlier.ejected(clock.now())).toBe(true);
    expect(svc.upstreams[1]!.outlier.ejected(clock.now())).toBe(false);

    for (let i = 0; i < 4; i++) {
      const res = await get(`${gw.url}/items/${i}`);
      expect(res.status).toBe(200);
      expect(res.text).toBe('ok from b');
      expect(res.headers['x-gateway-attempts']).toBe('1');
    }
    expect(hits.filter((h) => h.instance === 'a')).toHaveLength(1);

    modes.a = 'ok';
    clock.t += 30_000;
    for (let i = 0; i < 2; i++) expect((await get(`${gw.url}/again/${i}`)).status).toBe(200);
    expect(hits.filter((h) => h.instance === 'a')).toHaveLength(2);
    expect(svc.upstreams[0]!.outlier.ejected(clock.now())).toBe(false);
  });

  it('answers 503 NO_HEALTHY_UPSTREAM without touching any instance once every instance is ejected (panic: false)', async () => {
    const clock = manualClock();
    const { hits, svc } = await twoInstances({ a: 'reset', b: 'reset' }, {
      ejectAfter: 1, ejectFor: '30s', maxEjectionPercent: 100, panic: false, runtime: { ...systemRuntime, now: () => clock.now() },
    });
    const gw = await gatewayWith(svc, stack()(forward(svc)));

    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await get(`${gw.url}/items`);
      statuses.push(res.status);
      expect(res.json().error.code).toBe('NO_HEALTHY_UPSTREAM');
    }
    // The first request's retry tried a, then b (each reset and was ejected), then found none left.
    expect(statuses).toEqual([503, 503, 503]);
    expect(hits.map((h) => h.instance).sort()).toEqual(['a', 'b']);
  });
});
