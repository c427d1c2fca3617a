import { Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { BadGatewayError, GatewayTimeoutError, toGatewayError } from '../../lib/errors.ts';
import { retry } from '../../lib/stages/retry/retry.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/**
 * Audit A7 (notes/s9/A7-findings.md): an instance that never accepts the
 * connection (a SYN dropped: a dead host, a full backlog) costs undici's
 * connect timeout, 10 s. The default retry repeated the request on the same
 * instance when it was the only one, and the client got its 504 after 21.5 s
 * (measured with the CLI and a listen(0) socket nobody accepts on). Like a
 * head timeout, the next attempts now go to another instance or nowhere.
 */
function attemptsOf(list: Observable<GatewayResponse>[]): Handler & { seen: GatewayRequest[] } {
  const seen: GatewayRequest[] = [];
  const h = ((req: GatewayRequest) => {
    seen.push(req);
    return list[seen.length - 1]!;
  }) as Handler & { seen: GatewayRequest[] };
  h.seen = seen;
  return h;
}

const fixed = { base: 100, cap: 1000, random: () => 0.5, budget: false } as const;
const ok: GatewayResponse = { status: 200, headers: [], body: null };

describe('retry after a connect timeout', () => {
  it('asks the next attempts for another instance (Attempt.elsewhereOr), as after a head timeout', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    scheduler.run(({ cold, expectObservable }) => {
      // As forward makes it: undici's connect timeout, before any socket (sent: false).
      const connectTimedOut = toGatewayError(Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), false);
      expect([connectTimedOut.code, connectTimedOut.sent]).toEqual(['GATEWAY_TIMEOUT', false]);
      const refused = new BadGatewayError('refused', { sent: false });
      const h = attemptsOf([cold<GatewayResponse>('-#', undefined, connectTimedOut), cold<GatewayResponse>('-#', undefined, refused), cold('-b|', { b: ok })]);
      expectObservable(retry({ ...fixed, attempts: 3, scheduler })(h)(gatewayRequest({ method: 'POST' }))).toBe('---b|', { b: { ...ok, headers: ['x-gateway-attempts', '3'] } });
      scheduler.flush();
      // Before: [undefined, undefined, undefined]: the one instance was tried again.
      expect(h.seen.map((r) => r.attempt.elsewhereOr)).toEqual([undefined, connectTimedOut, connectTimedOut]);
    });
  });

  it('leaves a timeout stage\'s 504 (timeouts.perAttempt) free to go anywhere, as before', () => {
    const scheduler = new TestScheduler((a, b) => expect(a).toEqual(b));
    scheduler.run(({ cold, expectObservable }) => {
      const perAttempt = new GatewayTimeoutError('upstream timed out');
      const h = attemptsOf([cold<GatewayResponse>('-#', undefined, perAttempt), cold('-b|', { b: ok })]);
      expectObservable(retry({ ...fixed, attempts: 2, scheduler })(h)(gatewayRequest())).toBe('52ms b|', { b: { ...ok, headers: ['x-gateway-attempts', '2'] } });
      scheduler.flush();
      expect(h.seen.map((r) => r.attempt.elsewhereOr)).toEqual([undefined, undefined]);
    });
  });
});
