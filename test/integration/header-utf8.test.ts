import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { rawSend, startRawUpstream, type RawUpstream } from '../support/raw-http.ts';
import { startGatewayFromYaml } from '../support/servers.ts';

/**
 * A request header value outside ASCII reaches the upstream as the bytes the
 * client sent, as nginx passes them: uWS hands values over decoded as UTF-8
 * and undici writes header strings as latin1, so `café` arrived as `caf E9`
 * and `☕` was refused (audit A4, "Left 1"). Bytes that are not UTF-8 are a
 * 400 naming the header. uWS 20.30 itself drops such bytes at either end of
 * a value (its trim takes them for whitespace: `caf C3 A9` arrives as `caf`),
 * so the values here have them inside.
 */

let up: RawUpstream;
let gw: Gateway & { url: string };
let port: number;

beforeAll(async () => {
  up = await startRawUpstream();
  gw = await startGatewayFromYaml(`
services: { up: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false } }
routes: [ { path: /p/*, service: up } ]
`);
  port = Number(new URL(gw.url).port);
});

afterAll(async () => {
  await gw.close();
  await up.close();
});

/** Sends a GET of `path` with `line` (raw bytes) as one header line; returns the answer and the head the upstream got, if any. */
async function sendWith(path: string, line: Buffer): Promise<{ status: number; body: string; head: Buffer | undefined }> {
  const out = await rawSend(port, [Buffer.concat([Buffer.from(`GET /p/${path} HTTP/1.1\r\nHost: gw.test\r\n`), line, Buffer.from('\r\n\r\n')])]);
  const i = up.requests.findIndex((r) => r.target === `/p/${path}`);
  return { status: out.responses[0]!.status, body: out.responses[0]!.body, head: i === -1 ? undefined : up.heads[i] };
}

const bytes = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));

describe('a request header value outside ASCII', () => {
  it('passes a UTF-8 header value upstream byte for byte (café is 63 61 66 C3 A9, not 63 61 66 E9)', async () => {
    const got = await sendWith('utf8', bytes('X-Name: caf', [0xc3, 0xa9], ' noir'));
    expect(got.status).toBe(200);
    expect(got.head!.includes(bytes('x-name: caf', [0xc3, 0xa9], ' noir\r\n'))).toBe(true);
  });

  it('passes ☕ (E2 98 95) upstream as its three bytes, in a cookie too', async () => {
    const got = await sendWith('coffee', bytes('X-Drink: a ', [0xe2, 0x98, 0x95], ' ok'));
    expect(got.status).toBe(200);
    expect(got.head!.includes(bytes('x-drink: a ', [0xe2, 0x98, 0x95], ' ok\r\n'))).toBe(true);
    const cookie = await sendWith('cookie', bytes('Cookie: n=', [0xe2, 0x98, 0x95], 'x'));
    expect(cookie.status).toBe(200);
    expect(cookie.head!.includes(bytes('cookie: n=', [0xe2, 0x98, 0x95], 'x\r\n'))).toBe(true);
  });

  it('answers 400 with the JSON error naming the header for a byte that is not UTF-8, and forwards nothing', async () => {
    const got = await sendWith('latin1', bytes('X-Name: caf', [0xe9], ' noir'));
    expect(got.status).toBe(400);
    expect(JSON.parse(got.body)).toMatchObject({ error: { code: 'BAD_REQUEST', message: 'request header x-name is not valid UTF-8' } });
    expect(got.head).toBeUndefined();
  });

  it('gives the instance back the in-flight count such a request took (review RR3: it leaked, and maxPending then held the instance at 503)', async () => {
    for (let i = 0; i < 3; i++) expect((await sendWith(`leak-${i}`, bytes('X-Name: caf', [0xe9], ' noir'))).status).toBe(400);
    const health = await (await fetch(`${gw.url}/__rxgate/health`)).json() as { services: Record<string, { instances: Array<{ inFlight: number }> }> };
    expect(health.services['up']!.instances[0]!.inFlight).toBe(0);
    expect((await sendWith('after-leak', bytes('X-Name: plain'))).status).toBe(200);
  });

  it('passes ASCII values as they are', async () => {
    const got = await sendWith('ascii', bytes('X-Name: plain value'));
    expect(got.head!.includes(bytes('x-name: plain value\r\n'))).toBe(true);
  });
});
