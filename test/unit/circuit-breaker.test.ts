import { Observable, Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { Breaker, type BreakerTransition } from '../../lib/stages/circuit-breaker/breaker.ts';
import { BreakerRegistry } from '../../lib/stages/circuit-breaker/registry.ts';
import { collectBody } from '../../lib/body.ts';
import { BadGatewayError, BadRequestError, CircuitOpenError, ClientAbortedError, GatewayTimeoutError, ServiceUnavailableError } from '../../lib/errors.ts';
import { circuitBreaker, judged } from '../../lib/stages/circuit-breaker/circuit-breaker.ts';
import { failOnStatuses } from '../../lib/stages/circuit-breaker/outcome.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

function request(path = '/'): GatewayRequest {
  return gatewayRequest({ path });
}

/** A transport failure the gateway itself saw: what the default verdict counts. */
const refused = (): BadGatewayError => new BadGatewayError('upstream refused the connection');

const response = (status: number): GatewayResponse => ({ status, headers: [], body: null });

/** A clock tests move by hand. */
function manualClock() {
  const clock = { t: 0, now: () => clock.t };
  return clock;
}

/** A handler whose every call is a Subject the test drives, with a record of subscriptions and teardowns. */
function drivenHandler() {
  const calls: { subject: Subject<GatewayResponse>; tornDown: boolean }[] = [];
  const handler: Handler = () => new Observable<GatewayResponse>((s) => {
    const call = { subject: new Subject<GatewayResponse>(), tornDown: false };
    calls.push(call);
    const sub = call.subject.subscribe(s);
    return () => {
      call.tornDown = true;
      sub.unsubscribe();
    };
  });
  return { handler, calls };
}

/** Subscribes once to `h`; returns what came out. */
function call(h: Handler, req: GatewayRequest = request()): { value?: GatewayResponse; error?: unknown } {
  const out: { value?: GatewayResponse; error?: unknown } = {};
  h(req).subscribe({ next: (v) => (out.value = v), error: (e: unknown) => (out.error = e) });
  return out;
}

/** A handler answering each call with the next outcome in `outcomes`. */
function scripted(outcomes: (number | Error)[]): Handler & { subscribed: number } {
  const h = Object.assign((() => new Observable<GatewayResponse>((s) => {
    h.subscribed++;
    const o = outcomes.shift() ?? 200;
    if (typeof o === 'number') {
      s.next(response(o));
      s.complete();
    } else {
      s.error(o);
    }
  })) as Handler, { subscribed: 0 });
  return h;
}

describe('circuitBreaker', () => {
  it('opens after the configured consecutive transport failures and timeouts, then rejects with a 503 CircuitOpenError carrying retry-after', () => {
    const clock = manualClock();
    const upstream = scripted([refused(), new ServiceUnavailableError('no instance'), new GatewayTimeoutError('no head')]);
    const h = circuitBreaker({ consecutiveFailures: 3, resetTimeout: '10s', clock })(upstream);
    for (let i = 0; i < 3; i++) expect(call(h).error).toHaveProperty('retryable', true);
    clock.t = 2500;
    const rejected = call(h);
    expect(rejected.error).toBeInstanceOf(CircuitOpenError);
    const err = rejected.error as CircuitOpenError;
    expect(err.status).toBe(503);
    expect(err.code).toBe('CIRCUIT_OPEN');
    expect(err.headers).toEqual({ 'retry-after': '8' });
    expect(upstream.subscribed).toBe(3);
  });

  it('does not count any upstream response status by default, 5xx included', () => {
    const upstream = scripted([500, 502, 503, 504, 404, 429, 501, 500, 503]);
    const policy = circuitBreaker({ consecutiveFailures: 2, clock: manualClock() });
    const h = policy(upstream);
    for (let i = 0; i < 9; i++) call(h);
    expect(policy.breakerFor(request()).state).toBe('closed');
    expect(call(h).value?.status).toBe(200);
    expect(upstream.subscribed).toBe(10);
  });

  it('counts the listed statuses, and transport failures still, with failOnStatuses', () => {
    const breaker = new Breaker({ consecutiveFailures: 2, clock: manualClock() });
    const h = circuitBreaker(breaker, { isFailure: failOnStatuses([502, 503]) })(scripted([500, 502, 404, 503, refused(), 200]));
    call(h);
    call(h);
    call(h);
    expect(breaker.state).toBe('closed');
    call(h);
    call(h);
    expect(breaker.state).toBe('open');
  });

  it('does not count another breaker\'s answer: its fallback (final) or its CircuitOpenError', () => {
    const clock = manualClock();
    const inner = new Breaker({ consecutiveFailures: 1, clock });
    const innerWithFallback = new Breaker({ consecutiveFailures: 1, clock });
    inner.trip();
    innerWithFallback.trip();
    const outer = new Breaker({ consecutiveFailures: 1, clock });
    const everything = () => true;
    const h1 = circuitBreaker(outer, { isFailure: everything })(circuitBreaker(inner)(scripted([])));
    const h2 = circuitBreaker(outer, { isFailure: failOnStatuses([503]) })(
      circuitBreaker(innerWithFallback, { fallback: { status: 503 } })(scripted([])),
    );
    expect(call(h1).error).toBeInstanceOf(CircuitOpenError);
    const fb = call(h2).value!;
    expect(fb.status).toBe(503);
    expect(fb.final).toBe(true);
    expect(outer.state).toBe('closed');
  });

  it('counts retryable errors as failures but not other errors', () => {
    const clock = manualClock();
    const upstream = scripted([new BadRequestError('x'), new BadRequestError('x'), new BadGatewayError('x'), new GatewayTimeoutError('x')]);
    const policy = circuitBreaker({ consecutiveFailures: 2, clock });
    const h = policy(upstream);
    call(h);
    call(h);
    expect(policy.breakerFor(request()).state).toBe('closed');
    call(h);
    call(h);
    expect(policy.breakerFor(request()).state).toBe('open');
  });

  it('lets one probe through when half-open, rejects the others at once, and closes on its success', () => {
    const clock = manualClock();
    const breaker = new Breaker({ consecutiveFailures: 1, resetTimeout: 1000, clock });
    const { handler, calls } = drivenHandler();
    const h = circuitBreaker(breaker)(handler);
    h(request()).subscribe({ error: () => {} });
    calls[0]!.subject.error(refused());
    expect(breaker.state).toBe('open');
    clock.t = 1000;
    const probe: GatewayResponse[] = [];
    h(request()).subscribe((r) => probe.push(r));
    const other = call(h);
    expect(other.error).toBeInstanceOf(CircuitOpenError);
    expect(calls).toHaveLength(2);
    calls[1]!.subject.next(response(200));
    expect(probe[0]?.status).toBe(200);
    expect(breaker.state).toBe('closed');
  });

  it('re-opens on a failed probe with the reset timeout backed off', () => {
    const clock = manualClock();
    const h = circuitBreaker({ consecutiveFailures: 1, resetTimeout: '1s', resetBackoff: 2, maxResetTimeout: '3s', clock })(scripted([refused(), refused(), refused(), 200]));
    call(h);
    expect((call(h).error as CircuitOpenError).headers).toEqual({ 'retry-after': '1' });
    clock.t = 1000;
    call(h); // failed probe
    expect((call(h).error as CircuitOpenError).headers).toEqual({ 'retry-after': '2' });
    clock.t = 3000;
    call(h); // failed again: 4s capped to 3s
    expect((call(h).error as CircuitOpenError).headers).toEqual({ 'retry-after': '3' });
    clock.t = 6000;
    expect(call(h).value?.status).toBe(200);
  });

  it('counts an unsubscribe before the response head as neither success nor failure, and tears the inner call down', () => {
    const clock = manualClock();
    const breaker = new Breaker({ consecutiveFailures: 1, resetTimeout: 1000, probeSuccesses: 1, clock });
    breaker.trip();
    clock.t = 1000;
    const { handler, calls } = drivenHandler();
    const h = circuitBreaker(breaker)(handler);
    const sub = h(request()).subscribe();
    expect(calls).toHaveLength(1);
    sub.unsubscribe();
    expect(calls[0]!.tornDown).toBe(true);
    expect(breaker.state).toBe('half-open');
    // the probe slot is free again
    h(request()).subscribe();
    expect(calls).toHaveLength(2);
  });

  it('counts a ClientAbortedError as no verdict', () => {
    const clock = manualClock();
    const breaker = new Breaker({ consecutiveFailures: 1, clock });
    const h = circuitBreaker(breaker)(scripted([new ClientAbortedError('gone')]));
    expect(call(h).error).toBeInstanceOf(ClientAbortedError);
    expect(breaker.state).toBe('closed');
  });

  it('gives the verdict at the response head: an error after it does not count', () => {
    const breaker = new Breaker({ consecutiveFailures: 1, clock: manualClock() });
    const { handler, calls } = drivenHandler();
    const errors: unknown[] = [];
    circuitBreaker(breaker)(handler)(request()).subscribe({ error: (e: unknown) => errors.push(e) });
    calls[0]!.subject.next(response(200));
    calls[0]!.subject.error(new BadGatewayError('body broke'));
    expect(errors).toHaveLength(1);
    expect(breaker.state).toBe('closed');
  });

  it('counts a response head slower than slowCallDuration as a failure', () => {
    const clock = manualClock();
    const breaker = new Breaker({ consecutiveFailures: 1, slowCallDuration: '2s', clock });
    const { handler, calls } = drivenHandler();
    const h = circuitBreaker(breaker)(handler);
    h(request()).subscribe();
    clock.t = 1999;
    calls[0]!.subject.next(response(200));
    expect(breaker.state).toBe('closed');
    h(request()).subscribe();
    clock.t = 1999 + 2000;
    calls[1]!.subject.next(response(200));
    expect(breaker.state).toBe('open');
  });

  it('answers with the fallback response while open', async () => {
    const clock = manualClock();
    const h = circuitBreaker({
      consecutiveFailures: 1, resetTimeout: '30s', clock,
      fallback: { status: 200, headers: { 'content-type': 'application/json' }, body: '{"items":[]}' },
    })(scripted([refused()]));
    call(h);
    const fb = call(h).value!;
    expect(fb.status).toBe(200);
    expect(fb.headers).toEqual(['content-type', 'application/json', 'retry-after', '30']);
    expect((await collectBody(fb.body!)).toString()).toBe('{"items":[]}');
  });

  it('emits every transition on state$, calls onTransition, and counts them', () => {
    const clock = manualClock();
    const seen: BreakerTransition[] = [];
    const logged: string[] = [];
    const policy = circuitBreaker({ key: 'users', consecutiveFailures: 1, resetTimeout: 100, clock, onTransition: (t) => logged.push(`${t.from}->${t.to}`) });
    policy.state$.subscribe((t) => seen.push(t));
    const h = policy(scripted([refused(), 200]));
    call(h);
    clock.t = 100;
    call(h);
    expect(seen.map((t) => [t.key, t.from, t.to, t.at])).toEqual([
      ['users', 'closed', 'open', 0],
      ['users', 'open', 'half-open', 100],
      ['users', 'half-open', 'closed', 100],
    ]);
    expect(seen[0]!.resetTimeout).toBe(100);
    expect(logged).toEqual(['closed->open', 'open->half-open', 'half-open->closed']);
    expect(policy.breakerFor(request()).counts).toEqual({ closed: 1, open: 1, 'half-open': 1, rejected: 0 });
  });

  it('keeps one breaker per key with keyBy, so one upstream opening leaves the other closed', () => {
    const clock = manualClock();
    const registry = new BreakerRegistry({ consecutiveFailures: 1, clock });
    const keys: string[] = [];
    registry.state$.subscribe((t) => keys.push(t.key));
    const h = circuitBreaker(registry, { keyBy: (req) => req.path })(scripted([refused(), 200, 200]));
    const out = (path: string) => call(h, request(path));
    out('/a');
    expect(out('/a').error).toBeInstanceOf(CircuitOpenError);
    expect(out('/b').value?.status).toBe(200);
    expect(registry.get('/a').state).toBe('open');
    expect(registry.get('/b').state).toBe('closed');
    expect(keys).toEqual(['/a']);
  });

  it('uses a custom isFailure verdict', () => {
    const breaker = new Breaker({ consecutiveFailures: 1, clock: manualClock() });
    call(circuitBreaker(breaker, { isFailure: (o) => o.response?.status === 429 })(scripted([429])));
    expect(breaker.state).toBe('open');
  });

  it('lets a stage that picks instances itself judge calls with a breaker per instance through judged()', () => {
    const registry = new BreakerRegistry({ consecutiveFailures: 1, clock: manualClock() });
    const origins = ['http://a', 'http://b'];
    // what a forward stage would do: skip an instance whose breaker rejects
    const pickAndCall = (outcome: number | Error) => {
      for (const origin of origins) {
        const breaker = registry.get(origin);
        const permit = breaker.tryAcquire();
        if (permit !== null) return { origin, out: call(() => judged(breaker, permit, scripted([outcome])(request()))) };
      }
      return null;
    };
    expect(pickAndCall(refused())?.origin).toBe('http://a');
    expect(registry.get('http://a').state).toBe('open');
    expect(pickAndCall(200)?.origin).toBe('http://b');
    expect(pickAndCall(500)?.out.value?.status).toBe(500);
    expect(pickAndCall(new GatewayTimeoutError('no head'))?.out.error).toBeInstanceOf(GatewayTimeoutError);
    expect(pickAndCall(200)).toBeNull();
  });

  it('throws TypeError at build time on bad configuration', () => {
    expect(() => circuitBreaker({ consecutiveFailures: -1 })).toThrow(TypeError);
    expect(() => circuitBreaker({ failureRate: 1.5 })).toThrow(TypeError);
    expect(() => circuitBreaker({ failureRate: 0.5, window: 'soon' })).toThrow(TypeError);
    expect(() => circuitBreaker({ probes: 0 })).toThrow(TypeError);
    expect(() => circuitBreaker({ resetBackoff: 0.5 })).toThrow(TypeError);
    expect(() => circuitBreaker(new BreakerRegistry())).toThrow(TypeError);
    expect(() => circuitBreaker({ fallback: { status: 42 } })).toThrow(TypeError);
  });
});
