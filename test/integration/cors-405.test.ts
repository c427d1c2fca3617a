import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * The router answers 405 before any stage runs; on a path whose route has
 * cors, that 405 goes through the route's cors policy, as Envoy's CORS
 * filter does on local replies: the page reads the 405 instead of a CORS
 * failure, and `Vary: Origin` keeps a shared cache from reusing it across
 * origins (second black-box audit, finding 7).
 */

const ORIGIN = 'https://app.example.com';
let up: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;
let upstreamHits = 0;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    req.resume();
    upstreamHits++;
    res.end('ok');
  });
  gw = await startGatewayFromYaml(`
services:
  up: { upstreams: ["${up.url}"] }
  withCors: { upstreams: ["${up.url}"], cors: { origins: ["${ORIGIN}"] } }
routes:
  - { path: /cget/*, service: up, methods: [GET, OPTIONS], cors: { origins: ["${ORIGIN}"], credentials: true } }
  - { path: /cany/*, service: up, methods: [GET, OPTIONS], cors: {} }
  - { path: /plain/*, service: up, methods: [GET] }
  - { path: /svc/*, service: withCors, methods: [GET, OPTIONS] }
  - { path: /off/*, service: withCors, methods: [GET, OPTIONS], cors: false }
`);
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

async function post(path: string, origin?: string): Promise<{ status: number; headers: Record<string, unknown> }> {
  const res = await request(gw.url + path, { method: 'POST', body: 'x', headers: origin === undefined ? {} : { origin } });
  await res.body.dump();
  return { status: res.statusCode, headers: res.headers };
}

const corsOf = (h: Record<string, unknown>): unknown[] => [h['access-control-allow-origin'], h['access-control-allow-credentials'], h['vary'], h['allow']];

describe("the router's 405 on a route with cors", () => {
  it('carries the CORS headers and Vary: Origin for an allowed origin', async () => {
    const res = await post('/cget/x', ORIGIN);
    expect(res.status).toBe(405);
    expect(corsOf(res.headers)).toEqual([ORIGIN, 'true', 'Origin', 'GET, HEAD, OPTIONS']);
  });

  it('carries Vary: Origin and no CORS headers for another origin or none', async () => {
    for (const origin of ['https://evil.example', undefined]) {
      const res = await post('/cget/x', origin);
      expect([res.status, ...corsOf(res.headers)], String(origin)).toEqual([405, undefined, undefined, 'Origin', 'GET, HEAD, OPTIONS']);
    }
  });

  it("carries * on a route whose cors admits any origin, and the service's cors on a route that has none of its own", async () => {
    const res = await post('/cany/x', ORIGIN);
    expect([res.status, ...corsOf(res.headers)]).toEqual([405, '*', undefined, undefined, 'GET, HEAD, OPTIONS']);
    const svc = await post('/svc/x', ORIGIN);
    expect([svc.status, ...corsOf(svc.headers)]).toEqual([405, ORIGIN, undefined, 'Origin', 'GET, HEAD, OPTIONS']);
  });

  it("stays as it was on a route without cors, or one that turns its service's cors off, and reaches no upstream", async () => {
    for (const path of ['/plain/x', '/off/x']) {
      const res = await post(path, ORIGIN);
      expect([res.status, ...corsOf(res.headers)], path).toEqual([405, undefined, undefined, undefined, path === '/plain/x' ? 'GET, HEAD' : 'GET, HEAD, OPTIONS']);
    }
    expect(upstreamHits).toBe(0);
  });
});
