import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { requestMode } from '../../lib/stages/cache/policy.ts';
import { gatewayRequest } from '../support/request.ts';

/**
 * A GET or HEAD with a body is never answered from the store nor stored
 * (A12's audit, notes/s12/A12-findings.md F2): the key does not hold the
 * body, so one query's answer went to another ("fat GET"). The edge gives a
 * request a body when it has a Content-Length other than 0 or a
 * Transfer-Encoding (lib/server/edge.ts); without one, `body` is null.
 */
describe('a request with a body', () => {
  const withBody = (method: string, headers: Record<string, string> = {}) => gatewayRequest({ method, headers: { host: 'a', ...headers }, body: BufferedBody.of('{"q":1}') });

  it('bypasses the cache for GET and HEAD, and only-if-cached gets the 504 of no stored response', () => {
    expect([requestMode(withBody('GET'), false), requestMode(withBody('HEAD'), true), requestMode(withBody('GET', { 'cache-control': 'only-if-cached' }), false)])
      .toEqual(['bypass', 'bypass', 'unavailable']);
  });

  it('leaves a GET without one to the lookup', () => {
    expect(requestMode(gatewayRequest({ headers: { host: 'a' } }), false)).toBe('lookup');
  });
});
