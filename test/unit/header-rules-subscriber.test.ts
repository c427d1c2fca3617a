import { Observable, Subscriber, type Observer } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { headerRules } from '../../lib/stages/headers/headers.ts';
import { HoldingSubscriber, InnerSubscriber } from '../../lib/subscriber.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';

/**
 * The headers stage per request: no Observable of its own (a stage before it
 * starts it directly, as rate-limit's and auth's), and with no response
 * rules nothing on the way back: the next handler gets the very subscriber
 * the stage got. Before, each request piped the next Observable through
 * `map` (a lifted Observable and an operator subscriber), response rules or not.
 */
const res: GatewayResponse = { status: 200, headers: ['x-b', '1', 'x-k', 'v'], body: null };
const request = (): GatewayRequest => ({ method: 'GET', path: '/', headers: { host: 'h' }, locals: {} }) as unknown as GatewayRequest;

/** A next handler that can be started (as forward's), keeping the observer it was started with. */
function startable(): { next: Handler; seen: unknown[]; reqs: GatewayRequest[] } {
  const seen: unknown[] = [];
  const reqs: GatewayRequest[] = [];
  const next = (() => new Observable<GatewayResponse>((s) => { s.next(res); s.complete(); })) as Handler & { start?: unknown };
  next.start = (req: GatewayRequest, observer: Observer<GatewayResponse>) => {
    seen.push(observer);
    reqs.push(req);
    observer.next(res);
    observer.complete();
    return null;
  };
  return { next, seen, reqs };
}

describe('the headers stage per request', () => {
  it('with request rules only, hands the next handler its own subscriber, and applies the rules once', () => {
    const { next, seen, reqs } = startable();
    const handler = headerRules({ request: { set: { 'x-r': '1' } } })!(next);
    const got: GatewayResponse[] = [];
    const subscriber = new Subscriber<GatewayResponse>({ next: (r) => { got.push(r); }, error: () => {}, complete: () => {} });
    handler(request()).subscribe(subscriber);
    expect(seen).toEqual([subscriber]);
    expect(reqs[0]!.headers['x-r']).toBe('1');
    expect(got).toEqual([res]);
  });

  it('with response rules, one subscriber of its own (no InnerSubscriber) that passes on the response with the rules applied', () => {
    const { next, seen } = startable();
    const handler = headerRules({ response: { set: { 'x-a': '2' }, remove: ['x-b'] } })!(next);
    const got: GatewayResponse[] = [];
    handler(request()).subscribe(new Subscriber<GatewayResponse>({ next: (r) => { got.push(r); }, error: () => {}, complete: () => {} }));
    expect(seen).toHaveLength(1);
    // no InnerSubscriber: a fifth class through its methods makes them megamorphic (docs/performance-policies.md)
    expect([seen[0] instanceof HoldingSubscriber, seen[0] instanceof InnerSubscriber]).toEqual([true, false]);
    expect(got.map((r) => r.headers)).toEqual([['x-k', 'v', 'x-a', '2']]);
    expect(res.headers).toEqual(['x-b', '1', 'x-k', 'v']); // the next handler's list is not touched
  });

  it('can be started without its Observable, as the stage before it starts it', () => {
    const { next, seen } = startable();
    const handler = headerRules({ request: { set: { 'x-r': '1' } } })!(next) as Handler & { start?: (req: GatewayRequest, o: Observer<GatewayResponse>) => unknown };
    expect(typeof handler.start).toBe('function');
    const got: GatewayResponse[] = [];
    handler.start!(request(), { next: (r) => got.push(r), error: () => {}, complete: () => {} });
    expect([seen.length, got.length]).toEqual([1, 1]);
  });
});
