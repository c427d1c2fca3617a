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
import type { KeptStores } from '../../lib/stages/rate-limit/kept-stores.ts';
import type { Handler } from '../../lib/types.ts';
import { callNow, gatewayRequest } from '../support/request.ts';

/**
 * Review RH, L2 (a regression of c76d884): once each bucket id had its own
 * memory store, a reload that dropped a route's limit closed its store, so a
 * later reload bringing the route back, or a --workers reload reverted
 * after one worker refused it (the revert rebuilds the old config), gave
 * every client it had refused a fresh budget. The one store for all ids
 * before kept them. Reloads as gateway.reload does them: track, build,
 * retire, close what was retired.
 */

const A = `
services: { up: { upstreams: ["http://127.0.0.1:9"] } }
routes:
  - { path: /login, service: up, rateLimit: { limit: 1, window: 1h } }
  - { path: /keys/*, service: up, rateLimit: { limit: 1, window: 1h, key: { header: x-api-key } } }
`;
/** /keys/* renamed (a new id), /login unchanged. */
const B = A.replace('path: /keys/*,', 'name: keys2, path: /keys/*,');
/** /login gone. */
const C = `
services: { up: { upstreams: ["http://127.0.0.1:9"] } }
routes:
  - { path: /keys/*, service: up, rateLimit: { limit: 1, window: 1h, key: { header: x-api-key } } }
`;
/** No memory limit at all. */
const NONE = `
services: { up: { upstreams: ["http://127.0.0.1:9"] } }
routes:
  - { path: /keys/*, service: up }
`;

let resources = new Resources();
afterEach(async () => {
  await resources.close();
  resources = new Resources();
});

const answer: Handler = () => of({ status: 200, headers: [], body: null });

function build(yaml: string): Map<string, Handler> {
  const built = buildRoutes(parseConfig(yaml, 'r.yaml', {}), {
    logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), runtime: systemRuntime, resources,
    events: new GatewayEvents(), stages: stageRegistry(),
    pipeline: (ctx) => ctx.stage('rateLimit')?.(answer) ?? answer,
  });
  return new Map(built.routes.map((r) => [r.path, r.handler]));
}

async function reload(yaml: string): Promise<Map<string, Handler>> {
  resources.track();
  const table = build(yaml);
  await resources.retire()();
  return table;
}

const status = (h: Handler, path: string, ip: string, headers: Record<string, string> = {}): number =>
  callNow(h, gatewayRequest({ path, remoteAddress: ip, headers })).status;
const kept = (): KeptStores => resources.peek('ratelimit:memory') as KeptStores;

describe('memory rate-limit counters across reloads', () => {
  it('keeps a client refused on /login refused through a reload that drops /login and one that brings it back', async () => {
    let t = build(A);
    const budget = kept().budget;
    expect([status(t.get('/login')!, '/login', '1.1.1.1'), status(t.get('/login')!, '/login', '1.1.1.1')]).toEqual([200, 429]);
    for (let i = 0; i < 10; i++) status(t.get('/keys/*')!, '/keys/x', '2.2.2.2', { 'x-api-key': `k${i}` });
    expect([budget.count, budget.stores.size]).toEqual([11, 2]);
    t = await reload(B); // the old /keys/* id is idle, its keys not refilled: kept, counted
    expect(kept().budget).toBe(budget);
    expect([budget.count, budget.stores.size, kept().idle]).toEqual([11, 3, 1]);
    expect(status(t.get('/login')!, '/login', '1.1.1.1')).toBe(429);
    t = await reload(C);
    expect(t.has('/login')).toBe(false);
    t = await reload(A); // or a --workers revert of a refused C
    expect(kept().budget).toBe(budget);
    expect(status(t.get('/login')!, '/login', '1.1.1.1')).toBe(429);
    expect(status(t.get('/keys/*')!, '/keys/x', '2.2.2.2', { 'x-api-key': 'k3' })).toBe(429);
    expect(budget.count).toBe([...budget.stores].reduce((n, s) => n + s.size, 0));
  });

  it('lets an idle store go once its keys have refilled, and every store when no memory limit is left', async () => {
    const short = A.replace('limit: 1, window: 1h }', 'limit: 1, window: 1ms }');
    let t = build(short);
    status(t.get('/login')!, '/login', '1.1.1.1');
    status(t.get('/keys/*')!, '/keys/x', '2.2.2.2', { 'x-api-key': 'k' }); // 1h: not refilled
    const budget = kept().budget;
    await new Promise((r) => setTimeout(r, 20)); // /login's key (1 ms) has refilled
    t = await reload(C);
    expect([budget.count, budget.stores.size, kept().idle]).toEqual([1, 1, 0]);
    t = await reload(NONE);
    expect(resources.peek('ratelimit:memory')).toBeUndefined();
    expect([budget.count, budget.stores.size]).toEqual([0, 0]);
    expect(status(t.get('/keys/*')!, '/keys/x', '2.2.2.2', { 'x-api-key': 'k' })).toBe(200);
  });
});
