import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * A preflight's Access-Control-Allow-Methods lists only methods some route
 * on the path answers: it advertised cors's default list (PUT, PATCH,
 * DELETE…) on a route of [GET, OPTIONS], and the page's PUT then got 405.
 * Worked out when the route is built (lib/stages/cors/index.ts).
 */

const ORIGIN = 'https://app.example.com';
let up: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    req.resume();
    res.end('ok');
  });
  gw = await startGatewayFromYaml(`
services:
  up: { upstreams: ["${up.url}"] }
routes:
  - { path: /get, service: up, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"] } }
  - { path: /split, service: up, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"] } }
  - { path: /split, service: up, methods: [POST] }
  - { path: /any, service: up, methods: [GET, DELETE, OPTIONS], cors: { origins: ["${ORIGIN}"], methods: ["*"] } }
  - { path: /listed, service: up, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"], methods: [GET, DELETE] } }
  - { path: /all, service: up, cors: { origins: ["${ORIGIN}"] } }
  - { path: /api/users/:id, service: up, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"] } }
  - { path: /api/*, service: up, methods: [PUT, POST, DELETE, OPTIONS], cors: { origins: ["${ORIGIN}"] } }
  - { path: /items/:id, service: up, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"] } }
  - { path: /items/:key, service: up, methods: [PUT] }
  - { path: /only-get, service: up, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"], methods: [PUT] } }
  - { path: /tier, service: up, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"], allowHeaders: [x-tier] } }
  - { path: /tier, service: up, match: { headers: { x-tier: gold } }, methods: [PUT, OPTIONS], cors: { origins: ["${ORIGIN}"], allowHeaders: [x-tier] } }
`);
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

async function allowed(path: string, method = 'GET'): Promise<string | undefined> {
  const res = await request(`${gw.url}${path}`, { method: 'OPTIONS', headers: { origin: ORIGIN, 'access-control-request-method': method } });
  await res.body.dump();
  expect(res.statusCode).toBe(204);
  return res.headers['access-control-allow-methods'] as string | undefined;
}

describe('a preflight advertises only methods the path answers', () => {
  it('leaves out what the route would answer 405 to', async () => {
    expect(await allowed('/get')).toBe('GET, HEAD');
    const put = await request(`${gw.url}/get`, { method: 'PUT', headers: { origin: ORIGIN } });
    await put.body.dump();
    expect(put.statusCode).toBe(405);
  });

  it('keeps a method another route on the same path answers', async () => {
    expect(await allowed('/split', 'POST')).toBe('GET, HEAD, POST');
  });

  it('turns * and a configured list into the methods the path answers', async () => {
    expect(await allowed('/any', 'DELETE')).toBe('GET, DELETE, HEAD');
    expect(await allowed('/listed')).toBe('GET');
  });

  it('keeps the configured list on a route that takes every method', async () => {
    expect(await allowed('/all')).toBe('GET, HEAD, PUT, PATCH, POST, DELETE');
  });
});

describe('a preflight on a path another pattern also matches', () => {
  it('keeps the configured list when a less specific pattern answers the announced method', async () => {
    // /api/users/:id answers the preflight; the PUT falls through to /api/*.
    expect(await allowed('/api/users/5', 'PUT')).toBe('GET, HEAD, PUT, PATCH, POST, DELETE');
    const put = await request(`${gw.url}/api/users/5`, { method: 'PUT', headers: { origin: ORIGIN } });
    await put.body.dump();
    expect(put.statusCode).toBe(200);
  });

  it('counts a route whose pattern differs only in its parameter names as the same path', async () => {
    expect(await allowed('/items/7', 'PUT')).toBe('GET, HEAD, PUT');
  });
});

describe('a configured list the path does not answer', () => {
  it('advertises none of the methods the operator did not list', async () => {
    expect(await allowed('/only-get', 'PUT')).toBeUndefined();
  });
});

describe('routes on one path that differ only in match', () => {
  it('are one path to a preflight, which carries none of the header values match tests: the gold route\'s PUT is announced and passes', async () => {
    // The preflight has no x-tier (a browser sends only the names, in Access-Control-Request-Headers), and the
    // route without match answers it; announcing only its GET would have the browser block the gold PUT.
    expect(await allowed('/tier', 'PUT')).toBe('GET, HEAD, PUT');
    const gold = await request(`${gw.url}/tier`, { method: 'PUT', headers: { origin: ORIGIN, 'x-tier': 'gold' } });
    await gold.body.dump();
    expect(gold.statusCode).toBe(200);
    // A PUT without it is still refused: the gold route is passed over and the other one on the path serves
    // GET (and OPTIONS, which cors answers: 405 with their Allow). The preflight's list is a superset.
    const plain = await request(`${gw.url}/tier`, { method: 'PUT', headers: { origin: ORIGIN } });
    await plain.body.dump();
    expect(plain.statusCode).toBe(405);
    expect(plain.headers['allow']).toBe('GET, HEAD, OPTIONS');
  });
});
