import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { rawSend, type RawResponse } from '../support/raw-http.ts';
import { startGatewayFromYaml } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * Session 11's 'found and left': the edge's refusals made before a route is
 * chosen (429 over maxRequestsPerClient, 414, 431) carried no CORS headers,
 * so a page saw a CORS error instead of the status, while the router's 405
 * and the IP filter's 403 go out through the route's cors. They now take
 * the cors of the route the request would reach.
 */

const ORIGIN = 'https://app.example';
let held: ServerResponse[];
let slow: Server;
let gw: Gateway & { url: string };
let port: number;

beforeAll(async () => {
  held = [];
  slow = createServer((_req, res) => { held.push(res); });
  await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  gw = await startGatewayFromYaml(`
limits: { maxRequestsPerClient: 1, maxUrlLength: 1024, maxHeaders: 20 }
services:
  slow: { upstreams: ["http://127.0.0.1:${(slow.address() as AddressInfo).port}"] }
routes:
  - path: /app/*
    service: slow
    cors: { origins: ["${ORIGIN}"] }
  - path: /only-get
    service: slow
    methods: [GET, OPTIONS]
    cors: { origins: ["${ORIGIN}"] }
  - path: /bare/*
    service: slow
`);
  port = Number(new URL(gw.url).port);
});

afterAll(async () => {
  for (const res of held.splice(0)) res.end('late');
  await gw.close();
  slow.closeAllConnections();
  await new Promise((resolve) => slow.close(resolve));
});

const request = (method: string, target: string, headers = ''): string => `${method} ${target} HTTP/1.1\r\nHost: gw\r\nOrigin: ${ORIGIN}\r\n${headers}\r\n`;

async function one(method: string, target: string, headers = ''): Promise<RawResponse> {
  const out = await rawSend(port, [request(method, target, headers)]);
  expect(out.responses).toHaveLength(1);
  return out.responses[0]!;
}

/** The CORS headers of a response head, lower-cased. */
function cors(r: RawResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of r.head.split('\r\n').slice(1)) {
    const at = line.indexOf(':');
    const name = line.slice(0, at).toLowerCase();
    if (name.startsWith('access-control-') || name === 'vary') out[name] = line.slice(at + 1).trim();
  }
  return out;
}

const admitted = { 'access-control-allow-origin': ORIGIN, vary: 'Origin' };

describe('edge refusals made before routing carry the cors of the route the request would reach', () => {
  it('answers 414 and 431 on a cors route with its CORS headers, and none on a route without cors', async () => {
    const long = await one('GET', `/app/${'a'.repeat(1100)}`);
    const many = await one('GET', '/app/x', Array.from({ length: 25 }, (_, i) => `X-H${i}: a\r\n`).join(''));
    const bare = await one('GET', `/bare/${'a'.repeat(1100)}`);
    expect([long.status, many.status, bare.status]).toEqual([414, 431, 414]);
    expect(cors(long)).toEqual(admitted);
    expect(cors(many)).toEqual(admitted);
    expect(cors(bare)).toEqual({});
    expect(JSON.parse(long.body).error.code).toBe('URI_TOO_LONG');
  });

  it('answers 429 over maxRequestsPerClient with the route\'s CORS headers; a 405 path takes the route a 405 would; a preflight keeps its 429', async () => {
    const first = rawSend(port, [request('GET', '/app/held')], { holdMs: 5000 });
    await until(() => held.length === 1);
    const over = await one('GET', '/app/x');
    const wrongMethod = await one('DELETE', '/only-get');
    const bare = await one('GET', '/bare/x');
    const preflight = await one('OPTIONS', '/app/x', 'Access-Control-Request-Method: PUT\r\n');
    expect([over.status, wrongMethod.status, bare.status, preflight.status]).toEqual([429, 429, 429, 429]);
    expect(JSON.parse(over.body).error.code).toBe('TOO_MANY_IN_FLIGHT');
    expect(cors(over)).toEqual(admitted);
    expect(cors(wrongMethod)).toEqual(admitted);
    expect(cors(bare)).toEqual({});
    expect(cors(preflight)).toEqual({});
    expect(held).toHaveLength(1);
    held.shift()!.end('done');
    expect((await first).responses.map((r) => r.status)).toEqual([200]);
  });
});
