import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { unresolvedClientRoutes } from '../../lib/stages/ip-filter/config-check.ts';

/**
 * Review RB (low) of bbb9de5: the warning for `ipFilter: false` beside
 * `trustedProxies` named routes whose rate limit keys by a claim or a
 * header too. Those count by the client's address only for a request
 * without that claim or header; the warning is about a key that is the
 * address (`key: ip`, the default).
 */

const head = 'services: { up: { upstreams: ["http://127.0.0.1:1"] } }\ntrustedProxies: [127.0.0.0/8]';
const limit = (key: string) => `rateLimit: { limit: 1, window: 1m${key === '' ? '' : `, key: ${key}`} }`;

function named(routes: string[], top = head): string[] {
  const yaml = `${top}\nroutes:\n${routes.map((r, i) => `  - { path: /r${i}/*, service: up, ${r} }`).join('\n')}`;
  return unresolvedClientRoutes(parseConfig(yaml, 'ip-filter-off.yaml', {}));
}

describe('the warning for ipFilter: false beside trustedProxies', () => {
  it('names a route whose rate limit keys by ip, explicitly or by default', () => {
    expect(named([`ipFilter: false, ${limit('ip')}`, `ipFilter: false, ${limit('')}`])).toEqual(['routes[0] (/r0/*)', 'routes[1] (/r1/*)']);
  });

  it('does not name a route whose rate limit keys by a header, a claim or the route', () => {
    expect(named([
      `ipFilter: false, ${limit('{ header: x-api-key }')}`,
      `ipFilter: false, ${limit('{ claim: sub }')}`,
      `ipFilter: false, ${limit('route')}`,
      `ipFilter: false, ${limit('ip')}`,
    ])).toEqual(['routes[3] (/r3/*)']);
  });

  it('names nothing without trustedProxies, with the stage on, or without a rate limit', () => {
    expect(named([`ipFilter: false, ${limit('ip')}`], 'services: { up: { upstreams: ["http://127.0.0.1:1"] } }')).toEqual([]);
    expect(named([`ipFilter: { allow: [], deny: [] }, ${limit('ip')}`, 'ipFilter: false', `ipFilter: false, rateLimit: false`])).toEqual([]);
  });
});
