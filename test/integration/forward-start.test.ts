import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Observer, Unsubscribable } from 'rxjs';
import type { GatewayRequest, GatewayResponse } from '../../lib/types.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { gatewayRequest } from '../support/request.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';

// A route whose pipeline is `forward` alone starts it without an Observable
// (`start`): it must tell its observer exactly what a subscriber would hear.

function request(path: string): GatewayRequest {
  return gatewayRequest({ path, headers: { host: 'gw' } });
}

/** What an observer heard, the body included, as one list of events. */
function recorder(): { observer: Observer<GatewayResponse>; events: string[]; done: Promise<void> } {
  const events: string[] = [];
  let settle!: () => void;
  const done = new Promise<void>((resolve) => { settle = resolve; });
  const observer: Observer<GatewayResponse> = {
    next(res) {
      events.push(`head ${res.status} ${res.headers.includes('x-up') ? 'x-up' : ''}`);
      res.body?.pipe({ write: (chunk) => { events.push(`chunk ${Buffer.from(chunk).toString()}`); return true; }, end: () => { events.push('end'); } });
    },
    error(err) { events.push(`error ${(err as { code?: string }).code}`); settle(); },
    complete() { events.push('complete'); settle(); },
  };
  return { observer, events, done };
}

let upstream: TestUpstream;
let hold: boolean;
let closed: Promise<void>;
beforeEach(async () => {
  hold = false;
  upstream = await startUpstream((req, res) => {
    closed = new Promise((resolve) => res.on('close', () => resolve()));
    res.setHeader('x-up', '1');
    if (hold) res.write('first');
    else res.end(`hello ${req.url}`);
  });
});
afterEach(async () => { await upstream.close(); });

describe('forward started without an Observable', () => {
  it('tells its observer the same head, body and completion as subscribing does', async () => {
    const service = new Service('up', { upstreams: [upstream.url] });
    const handler = forward(service);
    const started = recorder();
    handler.start(request('/a'), started.observer);
    await started.done;
    const subscribed = recorder();
    handler(request('/a')).subscribe(subscribed.observer);
    await subscribed.done;
    expect(started.events).toEqual(['head 200 x-up', 'chunk hello /a', 'end', 'complete']);
    expect(started.events).toEqual(subscribed.events);
    await service.close();
  });

  it('aborts the upstream request when what it returns is unsubscribed', async () => {
    hold = true;
    const service = new Service('up', { upstreams: [upstream.url] });
    const run = recorder();
    let handle: Unsubscribable | null = null;
    const headed = new Promise<void>((resolve) => {
      const next = run.observer.next.bind(run.observer);
      run.observer.next = (res) => { next(res); resolve(); };
      handle = forward(service).start(request('/slow'), run.observer);
    });
    await headed;
    handle!.unsubscribe();
    await closed;
    expect(run.events).toEqual(['head 200 x-up', 'chunk first']);
    expect(service.upstreams[0]!.inFlight).toBe(0);
    await service.close();
  });

  it('errors with NO_HEALTHY_UPSTREAM when no instance may be used, picking once', async () => {
    const service = new Service('none', { upstreams: [upstream.url] });
    let picks = 0;
    // As when every instance is out of rotation and panic mode is off.
    service.pick = () => { picks++; return undefined; };
    const run = recorder();
    forward(service).start(request('/x'), run.observer);
    expect(run.events).toEqual(['error NO_HEALTHY_UPSTREAM']);
    expect(picks).toBe(1);
    await service.close();
  });
});
