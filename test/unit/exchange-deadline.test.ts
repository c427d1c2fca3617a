import { Readable } from 'node:stream';
import { VirtualTimeScheduler, type Observer } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { isGatewayError, type GatewayError } from '../../lib/errors.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { Deadlines } from '../../lib/stages/timeout/deadlines.ts';
import type { BodySink, GatewayResponse } from '../../lib/types.ts';
import { Exchange } from '../../lib/upstream/exchange.ts';
import { Service } from '../../lib/upstream/service.ts';

/**
 * The upstream exchange's own enforcement of the service's timeout (undici's
 * headersTimeout and bodyTimeout are off), on virtual time: the exchange is
 * driven through undici's handler calls, and `abort` does what undici's does
 * to the handler (fails the request with the error given).
 */
const TIMEOUT = 100;
const services: Service[] = [];

afterEach(async () => {
  while (services.length > 0) await services.pop()!.close();
});

function setup(options: { streamIdleMs?: number; method?: string; onClockRead?: () => void } = {}) {
  const scheduler = new VirtualTimeScheduler();
  scheduler.maxFrames = 0;
  const service = new Service('up', { upstreams: ['http://127.0.0.1:1'], timeout: `${TIMEOUT}ms`, runtime: virtualRuntime(scheduler) });
  services.push(service);
  // The service's list runs on the real clock (as undici's timeouts did); this one on virtual time.
  (service as unknown as { deadlines: Deadlines }).deadlines = new Deadlines(scheduler, () => {
    options.onClockRead?.();
    return scheduler.now();
  }, TIMEOUT, true);
  const seen: { responses: GatewayResponse[]; error: GatewayError | null; complete: boolean; aborts: Error[] } = { responses: [], error: null, complete: false, aborts: [] };
  const observer: Observer<GatewayResponse> = {
    next: (r) => seen.responses.push(r),
    error: (e: unknown) => { seen.error = isGatewayError(e) ? e : null; },
    complete: () => { seen.complete = true; },
  };
  const exchange = new Exchange(observer, options.method === 'HEAD', service, service.upstreams[0]!, options.streamIdleMs ?? -1);
  const abort = (err: Error): void => {
    seen.aborts.push(err);
    exchange.onError(err);
  };
  /** Moves virtual time on by `ms`, running every timer due on the way. */
  const advance = (ms: number): void => {
    const until = scheduler.now() + ms;
    scheduler.maxFrames = until;
    scheduler.flush();
    scheduler.schedule(() => {}, until - scheduler.now());
    scheduler.flush();
  };
  const sinkTaking = (takes: () => boolean): BodySink & { got: number } => {
    const sink = { got: 0, write: () => { sink.got++; return takes(); }, end: () => {} };
    return sink;
  };
  return { scheduler, service, exchange, abort, advance, seen, sinkTaking, list: service.deadlines! };
}

describe('upstream exchange: the service\'s deadline list', () => {
  it('runs on the real clock, as undici\'s own timeouts did, even for a service on virtual time', () => {
    const scheduler = new VirtualTimeScheduler();
    const service = new Service('up', { upstreams: ['http://127.0.0.1:1'], timeout: '1h', runtime: virtualRuntime(scheduler) });
    services.push(service);
    const observer = { next: () => {}, error: () => {}, complete: () => {} };
    new Exchange(observer, false, service, service.upstreams[0]!, -1).onConnect(() => {});
    expect(service.deadlines!.size).toBe(1);
    expect(scheduler.actions).toHaveLength(0);
  });

  it('is none when the service timeout is 0', () => {
    const service = new Service('up', { upstreams: ['http://127.0.0.1:1'], timeout: 0 });
    services.push(service);
    expect(service.deadlines).toBeNull();
  });
});

const codeOf = (err: Error | undefined): string | undefined => (err as { code?: string } | undefined)?.code;

describe('upstream exchange: the service timeout on the head', () => {
  it('aborts with undici\'s headers timeout once the service timeout passes with no head, answering 504 as undici\'s own did', () => {
    const { exchange, abort, advance, seen, list } = setup();
    exchange.onConnect(abort);
    expect(list.size).toBe(1);
    advance(TIMEOUT - 1);
    expect(seen.aborts).toEqual([]);
    advance(1);
    expect(seen.aborts.map(codeOf)).toEqual(['UND_ERR_HEADERS_TIMEOUT']);
    expect(seen.error).toMatchObject({ status: 504, code: 'GATEWAY_TIMEOUT', message: 'upstream timed out', sent: true });
    expect(list.size).toBe(0);
  });

  it('starts no clock before undici hands the request to a socket', () => {
    const { exchange, abort, advance, seen, list } = setup();
    advance(5 * TIMEOUT);
    expect(list.size).toBe(0);
    exchange.onConnect(abort);
    advance(TIMEOUT - 1);
    expect(seen.aborts).toEqual([]);
    advance(1);
    expect(seen.aborts.map(codeOf)).toEqual(['UND_ERR_HEADERS_TIMEOUT']);
  });

  it('takes a cancelled request off the list, and its deadline never fires', () => {
    const { exchange, abort, advance, seen, list } = setup();
    exchange.onConnect(abort);
    advance(TIMEOUT / 2);
    exchange.cancel();
    expect(list.size).toBe(0);
    advance(5 * TIMEOUT);
    expect(seen.aborts.map(codeOf)).toEqual(['CLIENT_ABORTED']);
  });

  it('starts the head wait again at an interim response', () => {
    const { exchange, abort, advance, seen } = setup();
    exchange.onConnect(abort);
    advance(TIMEOUT - 10);
    exchange.onHeaders(100, [], () => {}, 'Continue');
    advance(TIMEOUT - 1);
    expect(seen.aborts).toEqual([]);
    advance(1);
    expect(seen.aborts.map(codeOf)).toEqual(['UND_ERR_HEADERS_TIMEOUT']);
  });

  it('lets a request still uploading wait, and counts the head wait from when the upload is sent', () => {
    const { exchange, abort, advance, seen, list } = setup();
    exchange.upload = new Readable({ read() {} });
    exchange.onConnect(abort);
    advance(3 * TIMEOUT);
    expect(seen.aborts).toEqual([]);
    exchange.onRequestSent();
    expect(list.size).toBe(1);
    advance(TIMEOUT - 1);
    expect(seen.aborts).toEqual([]);
    advance(1);
    expect(seen.aborts.map(codeOf)).toEqual(['UND_ERR_HEADERS_TIMEOUT']);
  });

  it('times out a request whose upload the instance stopped reading (the upload paused), as undici did', () => {
    const { exchange, abort, advance, seen } = setup();
    const upload = new Readable({ read() {} });
    exchange.upload = upload;
    exchange.onConnect(abort);
    upload.pause();
    advance(TIMEOUT);
    expect(seen.aborts.map(codeOf)).toEqual(['UND_ERR_HEADERS_TIMEOUT']);
  });
});

describe('upstream exchange: the service timeout on body gaps', () => {
  it('starts the gap again at every chunk and aborts with undici\'s body timeout after a quiet one', () => {
    const { exchange, abort, advance, seen, sinkTaking, list } = setup();
    exchange.onConnect(abort);
    advance(TIMEOUT - 1);
    expect(exchange.onHeaders(200, [Buffer.from('content-length'), Buffer.from('10')], () => {}, 'OK')).toBe(false);
    seen.responses[0]!.body!.pipe(sinkTaking(() => true));
    for (let i = 0; i < 5; i++) {
      advance(TIMEOUT - 1);
      expect(exchange.onData(Buffer.from('x'))).toBe(true);
    }
    expect(seen.aborts).toEqual([]);
    advance(TIMEOUT);
    expect(seen.aborts.map(codeOf)).toEqual(['UND_ERR_BODY_TIMEOUT']);
    expect(seen.error).toMatchObject({ code: 'GATEWAY_TIMEOUT' });
    expect(list.size).toBe(0);
  });

  it('does not count the time nobody takes the body, or the client holds it back', () => {
    const { exchange, abort, advance, seen, sinkTaking, list } = setup();
    let resumed = 0;
    exchange.onConnect(abort);
    exchange.onHeaders(200, [], () => { resumed++; }, 'OK');
    advance(5 * TIMEOUT); // no sink yet: undici is paused
    expect(list.size).toBe(0);
    let room = true;
    seen.responses[0]!.body!.pipe(sinkTaking(() => room));
    expect(resumed).toBe(1);
    room = false;
    expect(exchange.onData(Buffer.from('x'))).toBe(false);
    advance(5 * TIMEOUT); // the client holds the body back
    expect(seen.aborts).toEqual([]);
    room = true;
    seen.responses[0]!.body!.resume();
    advance(TIMEOUT - 1);
    expect(seen.aborts).toEqual([]);
    advance(1);
    expect(seen.aborts.map(codeOf)).toEqual(['UND_ERR_BODY_TIMEOUT']);
  });

  it('reads the clock at every chunk but the last of a sized body, which undici completes in the same parse', () => {
    let reads = 0;
    const { exchange, abort, seen, sinkTaking, list } = setup({ onClockRead: () => { reads++; } });
    exchange.onConnect(abort);
    exchange.onHeaders(200, [Buffer.from('content-length'), Buffer.from('3')], () => {}, 'OK');
    seen.responses[0]!.body!.pipe(sinkTaking(() => true));
    const atHead = reads;
    exchange.onData(Buffer.from('ab'));
    expect(reads).toBe(atHead + 1);
    exchange.onData(Buffer.from('c'));
    expect(reads).toBe(atHead + 1);
    exchange.onComplete();
    expect(list.size).toBe(0);
    expect(seen.complete).toBe(true);
  });

  it('restarts the gap at every chunk when the length is not a number', () => {
    const { exchange, abort, advance, seen, sinkTaking } = setup();
    exchange.onConnect(abort);
    exchange.onHeaders(200, [Buffer.from('content-length'), Buffer.from('x')], () => {}, 'OK');
    seen.responses[0]!.body!.pipe(sinkTaking(() => true));
    for (let i = 0; i < 3; i++) {
      advance(TIMEOUT - 1);
      exchange.onData(Buffer.from('x'));
    }
    expect(seen.aborts).toEqual([]);
  });

  it('takes a completed response off the list', () => {
    const { exchange, abort, advance, seen, sinkTaking, list } = setup();
    exchange.onConnect(abort);
    exchange.onHeaders(200, [], () => {}, 'OK');
    seen.responses[0]!.body!.pipe(sinkTaking(() => true));
    exchange.onData(Buffer.from('x'));
    exchange.onComplete();
    expect(list.size).toBe(0);
    expect(seen.complete).toBe(true);
    advance(5 * TIMEOUT);
    expect(seen.aborts).toEqual([]);
  });

  it('takes a response without a body off the list at its head', () => {
    const { exchange, abort, advance, seen, list } = setup({ method: 'HEAD' });
    exchange.onConnect(abort);
    expect(exchange.onHeaders(200, [], () => {}, 'OK')).toBe(true);
    expect(list.size).toBe(0);
    advance(5 * TIMEOUT);
    expect(seen.aborts).toEqual([]);
  });

  it('leaves an event stream to the route\'s stream idle limit (none here) when the client takes event streams', () => {
    const { exchange, abort, advance, seen, sinkTaking, list } = setup({ streamIdleMs: 0 });
    exchange.onConnect(abort);
    exchange.onHeaders(200, [Buffer.from('content-type'), Buffer.from('text/event-stream')], () => {}, 'OK');
    seen.responses[0]!.body!.pipe(sinkTaking(() => true));
    exchange.onData(Buffer.from('data: 1\n\n'));
    expect(list.size).toBe(0);
    advance(50 * TIMEOUT);
    expect(seen.aborts).toEqual([]);
  });

  it('bounds an event stream by the service timeout when the client did not ask for one', () => {
    const { exchange, abort, advance, seen, sinkTaking } = setup({ streamIdleMs: -1 });
    exchange.onConnect(abort);
    exchange.onHeaders(200, [Buffer.from('content-type'), Buffer.from('text/event-stream')], () => {}, 'OK');
    seen.responses[0]!.body!.pipe(sinkTaking(() => true));
    advance(TIMEOUT);
    expect(seen.aborts.map(codeOf)).toEqual(['UND_ERR_BODY_TIMEOUT']);
  });
});

describe('upstream exchange: one timer per service', () => {
  it('keeps one timer pending for any number of requests waiting', () => {
    const { scheduler, service, abort } = setup();
    const observer = { next: () => {}, error: () => {}, complete: () => {} };
    for (let i = 0; i < 100; i++) new Exchange(observer, false, service, service.upstreams[0]!, -1).onConnect(abort);
    expect(service.deadlines!.size).toBe(100);
    expect(scheduler.actions.length).toBe(1);
  });
});

describe('upstream exchange: a request undici refuses to send', () => {
  it('is a 400 that does not count against the instance (no failure latency, no strike, no failed answer)', () => {
    const { service, exchange, seen } = setup();
    const up = service.upstreams[0]!;
    const outcomes: boolean[] = [];
    service.latencyObserver = (_u, _ms, ok) => outcomes.push(ok);
    // What undici throws for a header value with a DEL byte, before any socket.
    exchange.onError(Object.assign(new Error('invalid x-a header'), { code: 'UND_ERR_INVALID_ARG' }));
    expect(seen.error).toMatchObject({ status: 400, code: 'BAD_REQUEST' });
    expect(outcomes).toEqual([]);
    expect(up.latency(performance.now())).toBeLessThan(1000);
  });
});

describe('deadline list: a limit past setTimeout\'s', () => {
  it('arms its timer with at most 2^31 - 1 ms and arms again for the rest, firing the entry once at its deadline', () => {
    const scheduler = new VirtualTimeScheduler();
    const delays: number[] = [];
    const recording = {
      now: () => scheduler.now(),
      schedule: (work: never, delay?: number, state?: never) => { delays.push(delay ?? 0); return scheduler.schedule(work, delay, state); },
    };
    const limit = 3_000_000_000; // ~34.7 days
    const list = new Deadlines(recording as never, () => scheduler.now(), limit);
    let fired = 0;
    list.add({ deadline: 0, prevDeadline: null, nextDeadline: null, expire: () => { fired++; } } as never);
    scheduler.flush();
    expect(delays.every((d) => d <= 2_147_483_647)).toBe(true);
    expect(delays.length).toBeGreaterThanOrEqual(2);
    expect(fired).toBe(1);
    expect(scheduler.now()).toBe(limit);
  });
});
