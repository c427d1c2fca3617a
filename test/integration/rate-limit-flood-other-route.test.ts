import { of } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { buildRoutes } from '../../lib/config/build-routes.ts';
import { stageRegistry } from '../../lib/config/build.ts';
import { parseConfig } from '../../lib/config/load.ts';
import { GatewayEvents } from '../../lib/observe/events.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { Resources } from '../../lib/resources/registry.ts';
import { systemRuntime } from '../../lib/runtime.ts';
import type { Handler } from '../../lib/types.ts';
import { callNow, gatewayRequest } from '../support/request.ts';

/**
 * A14's F2 (notes/s13/A14-findings.md): every route's memory-store limit
 * lived in one store of 100,000 keys, so a flood of new keys on one route (a
 * header value per request on a route keyed by header, or addresses) made
 * it forget the state of every other route's clients: a client refused on
 * /login got a fresh budget once 100,000 other keys had been admitted after
 * it. nginx's limit_req zones are apart. Now each bucket id has its store
 * in one shared budget, and past it the store holding the most keys forgets
 * its own oldest. Built from YAML in process (100,000 requests over HTTP
 * would take most of a minute); the upstream is a handler answering 200.
 */

const YAML = `
services: { up: { upstreams: ["http://127.0.0.1:9"] } }
routes:
  - { path: /login, service: up, rateLimit: { limit: 1, window: 1h } }
  - { path: /keys/*, service: up, rateLimit: { limit: 1, window: 1h, key: { header: x-api-key } } }
`;

const resources = new Resources();
afterEach(async () => {
  await resources.close();
});

function routes(yaml = YAML): Map<string, Handler> {
  const built = buildRoutes(parseConfig(yaml, 'flood.yaml', {}), {
    logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), runtime: systemRuntime, resources,
    events: new GatewayEvents(), stages: stageRegistry(),
    pipeline: (ctx) => ctx.stage('rateLimit')!(() => of({ status: 200, headers: [], body: null })),
  });
  return new Map(built.routes.map((r) => [r.path, r.handler]));
}

const status = (handler: Handler, path: string, remoteAddress: string, headers: Record<string, string> = {}): number =>
  callNow(handler, gatewayRequest({ path, remoteAddress, headers })).status;

describe('a flood of new keys on one route', () => {
  it('does not forgive a client another route refused (the 100,000-key budget is spent on the flooding route)', () => {
    const table = routes();
    const login = table.get('/login')!;
    const keys = table.get('/keys/*')!;
    expect([status(login, '/login', '203.0.113.7'), status(login, '/login', '203.0.113.7')]).toEqual([200, 429]);
    for (let i = 0; i <= 100_000; i++) status(keys, '/keys/x', '198.51.100.1', { 'x-api-key': `k${i}` });
    expect(status(login, '/login', '203.0.113.7')).toBe(429);
    // The flooding route forgot its own oldest key: that client starts afresh.
    expect(status(keys, '/keys/x', '198.51.100.1', { 'x-api-key': 'k0' })).toBe(200);
    expect(status(keys, '/keys/x', '198.51.100.1', { 'x-api-key': 'k100000' })).toBe(429);
  });

  it('does not forgive a client refused on /login when /login holds its fair share of the budget (review RH, M1)', () => {
    // 10 limited routes: a share of 10,000 keys each. A busy login route held more than that, so it forgot its
    // own oldest client (the refused one: a refusal does not move its key) for each new client past the flood.
    const others = Array.from({ length: 8 }, (_, i) => `  - { path: /r${i}, service: up, rateLimit: { limit: 1, window: 1h } }`).join('\n');
    const table = routes(`${YAML}${others}\n`);
    const login = table.get('/login')!;
    const keys = table.get('/keys/*')!;
    const addr = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    expect([status(login, '/login', '203.0.113.7'), status(login, '/login', '203.0.113.7')]).toEqual([200, 429]);
    for (let i = 1; i <= 10_000; i++) status(login, '/login', addr(i)); // a busy login route
    for (let i = 0; i < 90_000; i++) status(keys, '/keys/x', '198.51.100.1', { 'x-api-key': `k${i}` }); // the flood
    expect(status(login, '/login', '203.0.113.7')).toBe(429);
    status(login, '/login', addr(20_000)); // one more client logs in
    expect(status(login, '/login', '203.0.113.7')).toBe(429);
  });
});
