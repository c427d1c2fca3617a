import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * Review R3 (D5): routes on one path whose methods differ only in order
 * ([GET, POST] and [POST, GET]) are one table entry, tried in written order
 * by their match, as checkDuplicateRoutes already counted them the same.
 * They were two entries, and the router only ever reached the first: a GET
 * without the first route's header was a 404.
 */

let runs: RxgateRuns;
const upstreams: Server[] = [];
let gw = '';

async function upstream(name: string): Promise<number> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
  });
  upstreams.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  const [beta, main, other] = [await upstream('beta'), await upstream('main'), await upstream('other')];
  runs = rxgateRuns();
  const gateway = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  beta: { upstreams: ["http://127.0.0.1:${beta}"] }
  main: { upstreams: ["http://127.0.0.1:${main}"] }
  other: { upstreams: ["http://127.0.0.1:${other}"] }
routes:
  - { path: /a, service: beta, methods: [GET, POST], match: { headers: { x-t: b } } }
  - { path: /a, service: main, methods: [POST, GET, GET] }
  - { path: /b, service: beta, methods: [GET, POST], match: { headers: { x-t: b } } }
  - { path: /b, service: main, methods: [GET, POST] }
  - { path: /c, service: beta, methods: [GET, POST], match: { headers: { x-t: b } } }
  - { path: /c, service: other, methods: [GET] }
  - { path: /c, service: main, methods: [POST, GET] }
  - { path: /tier, service: beta, methods: [GET, PUT, OPTIONS], match: { headers: { x-t: b } } }
  - { path: /tier, service: main, methods: [GET, OPTIONS] }
  - { path: /deep/x, service: beta, match: { headers: { x-t: b } } }
  - { path: /deep/*, service: other }
  - { path: /only-match, service: beta, match: { headers: { x-t: b } } }
`)], { RXGATE_LOG_LEVEL: 'info' });
  gw = `http://127.0.0.1:${Number((await gateway.logged('rxgate listening'))['port'])}`;
}, 60_000);

afterAll(async () => {
  runs?.remove();
  for (const s of upstreams) await new Promise((resolve) => s.close(resolve));
});

async function who(path: string, init: RequestInit = {}): Promise<string> {
  const res = await fetch(gw + path, init);
  return `${res.status} ${await res.text()}`.slice(0, 40);
}

describe('routes on one path with the same methods in another order', () => {
  it('are one entry: the match route for a request that matches, the other for the rest', async () => {
    for (const path of ['/a', '/b']) {
      expect(await who(path), path).toBe('200 main');
      expect(await who(path, { headers: { 'x-t': 'b' } }), path).toBe('200 beta');
      expect(await who(path, { method: 'POST', body: 'x' }), path).toBe('200 main');
    }
  });
});

describe('a route written between two with the same methods', () => {
  // Review R4: /c's third route joined the first's entry ahead of the second, so a GET
  // without the header went to it, past a route written before it (which may require auth).
  it('keeps the later one out of the earlier entry: the earlier entry answers first, as written', async () => {
    expect(await who('/c', { headers: { 'x-t': 'b' } })).toBe('200 beta');
    // A request without the header passes the first entry over to the route written next (/c's second), never the third.
    expect(await who('/c')).toBe('200 other');
  });
});

describe('a route whose match the request fails', () => {
  // Helper L (session 9): the router chose the first route on the path that allows the method and, when its
  // match failed, answered 404, though a later route on the same path (other methods listed) or a less
  // specific one (/deep/*) served the request. nginx and Envoy go on to the next route; so does rxgate now.
  it('passes the request on to the next route on the path, or to a less specific one', async () => {
    expect(await who('/tier')).toBe('200 main');
    expect(await who('/tier', { headers: { 'x-t': 'b' } })).toBe('200 beta');
    expect(await who('/tier', { method: 'PUT', body: 'x', headers: { 'x-t': 'b' } })).toBe('200 beta');
    const put = await fetch(gw + '/tier', { method: 'PUT', body: 'x' });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, HEAD, OPTIONS');
    await put.text();
    expect(await who('/deep/x')).toBe('200 other');
    expect(await who('/deep/x', { headers: { 'x-t': 'b' } })).toBe('200 beta');
  });

  it('is a 404 when no other route serves the path', async () => {
    expect(await who('/only-match', { headers: { 'x-t': 'b' } })).toBe('200 beta');
    expect(await who('/only-match')).toMatch(/^404 .*ROUTE_NOT_FOUND/);
  });
});
