import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawSend } from '../support/raw-http.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * What uWebSockets.js 20.30 decides before rxgate sees a request, as
 * docs/limits.md states it: methods outside its list are closed without an
 * answer, even on a route that lists them, and `Expect: 100-continue` gets
 * `100 Continue` from uWS before rxgate has routed the request, so a 404 or
 * a 413 follows the 100. Raw sockets; the upstream counts what reaches it.
 */

let up: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;
let port: number;
let reached = 0;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    reached++;
    req.resume();
    res.end('ok');
  });
  gw = await startGatewayFromYaml(`
services: { up: { upstreams: ["${up.url}"], retry: false } }
routes:
  - { path: /any/*, service: up, methods: [GET, HEAD, POST, PURGE, PROPFIND, MKCOL, REPORT, SEARCH, QUERY, LINK] }
  - { path: /small/*, service: up, maxBodySize: 16 }
`);
  port = Number(new URL(gw.url).port);
});
afterAll(async () => {
  await gw.close();
  await up.close();
});

describe('methods uWS 20.30 closes without an answer', () => {
  it.each(['PURGE', 'PROPFIND', 'MKCOL', 'REPORT', 'SEARCH', 'QUERY', 'LINK', 'M-SEARCH', 'FOO', 'get'])('%s: closed, no answer, nothing upstream, even on a route that lists it', async (method) => {
    const before = reached;
    const out = await rawSend(port, [`${method} /any/x HTTP/1.1\r\nHost: x\r\n\r\n`], { holdMs: 3000 });
    expect(out).toEqual({ responses: [], closed: true, held: false });
    expect(reached).toBe(before);
  });

  it.each(['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])('%s reaches rxgate and is answered', async (method) => {
    const body = method === 'POST' || method === 'PUT' || method === 'PATCH' ? 'Content-Length: 0\r\n' : '';
    const out = await rawSend(port, [`${method} /any/x HTTP/1.1\r\nHost: x\r\n${body}\r\n`]);
    expect(out.closed).toBe(false);
    // /any/* takes GET and POST; the others are rxgate's own 405.
    expect(out.responses.map((r) => r.status)).toEqual([method === 'GET' || method === 'POST' ? 200 : 405]);
  });
});

describe('Expect: 100-continue', () => {
  it('is answered 100 by uWS before rxgate routes the request: a path with no route gets 100, then 404', async () => {
    const out = await rawSend(port, ['POST /nowhere HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n'], { expected: 2, holdMs: 2000 });
    expect(out.responses.map((r) => r.status)).toEqual([100, 404]);
    expect(out.responses[0]!.head).toMatch(/^HTTP\/1\.1 100 Continue/);
    expect(JSON.parse(out.responses[1]!.body)).toMatchObject({ error: { code: 'ROUTE_NOT_FOUND' } });
  });

  it('a declared length over maxBodySize gets 100, then 413, before the body is sent', async () => {
    const before = reached;
    const out = await rawSend(port, ['POST /small/x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000\r\n\r\n'], { expected: 2, holdMs: 2000 });
    expect(out.responses.map((r) => r.status)).toEqual([100, 413]);
    expect(JSON.parse(out.responses[1]!.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(reached).toBe(before);
  });
});
