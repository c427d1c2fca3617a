import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { EdgeLimits } from '../../lib/server/limits.ts';
import type { Gateway } from '../../lib/gateway.ts';
import { rawSend, split, startRawUpstream, type RawUpstream } from '../support/raw-http.ts';
import { startGatewayFromYaml } from '../support/servers.ts';
import { together } from '../support/together.ts';
import { until } from '../support/wait.ts';

/**
 * The edge limits over raw sockets, against a node:net upstream that
 * records every byte: what rxgate answers (414, 431, 408, 429), and what
 * uWebSockets.js 20.30 decides before rxgate sees a request (it holds or
 * closes), tested as it is.
 */

let upstream: RawUpstream;
let gateway: Gateway & { url: string };
let port: number;

const yaml = (limits: string, extra = '', up = upstream.url): string => `
${extra}
limits: ${limits}
services:
  api: { upstreams: ["${up}"] }
routes:
  - path: /public/*
    service: api
`;

/** The case waiting on uWS's ~10 s idle timer: started at the end of beforeAll, so the other cases run meanwhile. */
const slow = together();

beforeAll(async () => {
  upstream = await startRawUpstream();
  gateway = await startGatewayFromYaml(yaml('{ maxHeaderBytes: 2048, maxHeaders: 20, maxUrlLength: 1024, bodyIdleTimeout: 400ms }'));
  port = Number(new URL(gateway.url).port);
  slow.start();
});

afterAll(async () => {
  await slow.settled();
  await gateway.close();
  await upstream.close();
});

const get = (target: string, headers = ''): string => `GET ${target} HTTP/1.1\r\nHost: gw\r\n${headers}\r\n`;
const lines = (n: number, size = 1): string => Array.from({ length: n }, (_, i) => `X-H${i}: ${'a'.repeat(size)}\r\n`).join('');

function expectError(body: string, code: string): void {
  expect(JSON.parse(body)).toEqual({ error: { code, message: expect.any(String) } });
}

/** Runs `send` and returns how many bytes reached the upstream meanwhile. */
async function upstreamBytesDuring<T>(send: () => Promise<T>): Promise<{ out: T; bytes: number }> {
  const before = upstream.bytes();
  const out = await send();
  // A request the gateway let through would be on its way: give it a moment.
  await new Promise((r) => setTimeout(r, 50));
  return { out, bytes: upstream.bytes() - before };
}

describe('what rxgate answers', () => {
  it('answers 414 URI_TOO_LONG for a target over maxUrlLength, query included; the upstream gets nothing', async () => {
    const { out, bytes } = await upstreamBytesDuring(() => rawSend(port, [get(`/public/${'a'.repeat(1000)}?q=${'b'.repeat(20)}`)]));
    expect(out.responses.map((r) => r.status)).toEqual([414]);
    expectError(out.responses[0]!.body, 'URI_TOO_LONG');
    expect(bytes).toBe(0);
    const fits = await rawSend(port, [get(`/public/${'a'.repeat(1000)}`)]);
    expect(fits.responses.map((r) => r.status)).toEqual([200]);
  });

  it('answers 431 HEADERS_TOO_LARGE for a head over maxHeaderBytes sent in one piece; the upstream gets nothing', async () => {
    const { out, bytes } = await upstreamBytesDuring(() => rawSend(port, [get('/public/a', `X-Big: ${'v'.repeat(2100)}\r\n`)]));
    expect(out.responses.map((r) => r.status)).toEqual([431]);
    expectError(out.responses[0]!.body, 'HEADERS_TOO_LARGE');
    expect(bytes).toBe(0);
    expect((await rawSend(port, [get('/public/a', `X-Big: ${'v'.repeat(1800)}\r\n`)])).responses.map((r) => r.status)).toEqual([200]);
  });

  it('answers 431 for more header lines than maxHeaders (Host counts), 200 at the limit', async () => {
    const over = await upstreamBytesDuring(() => rawSend(port, [get('/public/a', lines(20))]));
    expect(over.out.responses.map((r) => r.status)).toEqual([431]);
    expect(over.bytes).toBe(0);
    expect((await rawSend(port, [get('/public/a', lines(19))])).responses.map((r) => r.status)).toEqual([200]);
  });

  it('answers 431 for a head under 4 KiB but over maxHeaderBytes that arrives in small pieces', async () => {
    const out = await rawSend(port, split(get('/public/a', `X-Big: ${'v'.repeat(3000)}\r\n`), 20), { gapMs: 5 });
    expect(out.responses.map((r) => r.status)).toEqual([431]);
  });

  it('answers 400 for a fragment (#) in the target', async () => {
    const out = await rawSend(port, [get('/public/a#/../../admin')]);
    expect(out.responses.map((r) => r.status)).toEqual([400]);
    expect(out.responses[0]!.body).toMatch(/fragment/);
  });

  it('answers 408 REQUEST_TIMEOUT and closes when the body stops for bodyIdleTimeout; the upstream never gets a complete request', async () => {
    const before = upstream.requests.length;
    const head = 'POST /public/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: 10\r\n\r\n';
    const out = await rawSend(port, [head, 'ab'], { gapMs: 20, holdMs: 3000, awaitClose: true });
    expect(out.responses.map((r) => r.status)).toEqual([408]);
    expectError(out.responses[0]!.body, 'REQUEST_TIMEOUT');
    expect(out.closed).toBe(true);
    expect(upstream.requests.slice(before).filter((r) => r.target === '/public/upload')).toEqual([]);
  });

  it('lets a body through whose gaps stay under bodyIdleTimeout', async () => {
    const before = upstream.requests.length;
    const head = 'POST /public/slow HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n';
    const chunks = ['3\r\nabc\r\n', '3\r\ndef\r\n', '3\r\nghi\r\n', '0\r\n\r\n'];
    const out = await rawSend(port, [head, ...chunks], { gapMs: 150, holdMs: 2000 });
    expect(out.responses.map((r) => r.status)).toEqual([200]);
    expect(upstream.requests.slice(before).map((r) => [r.target, r.body])).toEqual([['/public/slow', 'abcdefghi']]);
  });
});

describe('what uWebSockets.js 20.30 decides before rxgate sees a request (as it is)', () => {
  it('holds a head of more than 48 header lines without an answer; nothing reaches rxgate or the upstream', async () => {
    const { out, bytes } = await upstreamBytesDuring(() => rawSend(port, [get('/public/a', lines(48))]));
    expect(out.held).toBe(true);
    expect(out.responses).toEqual([]);
    expect(bytes).toBe(0);
  });

  it('closes without an answer a head over 4 KiB that arrives in more than one read', async () => {
    const { out, bytes } = await upstreamBytesDuring(() => rawSend(port, split(get('/public/a', `X-Big: ${'v'.repeat(5000)}\r\n`), 10), { gapMs: 5 }));
    expect(out.closed).toBe(true);
    expect(out.responses).toEqual([]);
    expect(bytes).toBe(0);
  });

  it('holds an absolute-form target (GET http://host/path) without an answer: it never reaches rxgate', async () => {
    const { out, bytes } = await upstreamBytesDuring(() => rawSend(port, ['GET http://gw/public/a HTTP/1.1\r\nHost: gw\r\n\r\n']));
    expect(out.held).toBe(true);
    expect(bytes).toBe(0);
  });

  // Started with the gateway (slow.add): the ~10 s wait overlaps the cases above.
  it('closes an unfinished head after its idle timeout (about 10 s, no answer) however slowly it keeps coming; without bodyIdleTimeout, a body under 16 KiB per 10 s is cut the same way', slow.add(async () => {
    // An upstream of its own: the other cases count the bytes reaching theirs while this one dribbles.
    const patientUpstream = await startRawUpstream();
    const patient = await startGatewayFromYaml(yaml('{ bodyIdleTimeout: false }', '', patientUpstream.url));
    try {
      const head = get('/public/a', 'X-Slow: ' + 'x'.repeat(100));
      const upload = 'POST /public/dribble HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n';
      // One byte every 500 ms: uWS 20.30 neither restarts its timer for a head in progress nor for a body that slow.
      const [slowHead, slowBody] = await Promise.all([
        rawSend(port, head.slice(0, 40).split(''), { gapMs: 500, holdMs: 20_000 }),
        rawSend(Number(new URL(patient.url).port), [upload, ...'x'.repeat(40).split('')], { gapMs: 500, holdMs: 20_000 }),
      ]);
      expect(slowHead.closed).toBe(true);
      expect(slowHead.responses).toEqual([]);
      expect(slowBody.closed).toBe(true);
      expect(slowBody.responses).toEqual([]);
      expect(patientUpstream.requests.filter((r) => r.target === '/public/dribble')).toEqual([]);
    } finally {
      await patient.close();
      await patientUpstream.close();
    }
  }), 30_000);
});

describe('maxRequestsPerClient', () => {
  let held: ServerResponse[];
  let slow: Server;
  let gw: (Gateway & { url: string }) | null = null;

  beforeAll(async () => {
    held = [];
    slow = createServer((_req, res) => { held.push(res); });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
  });

  afterEach(async () => {
    for (const res of held.splice(0)) res.end('late');
    await gw?.close();
    gw = null;
  });

  afterAll(async () => {
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
  });

  const slowYaml = (limits: string, extra = ''): string => `
${extra}
limits: ${limits}
services:
  slow: { upstreams: ["http://127.0.0.1:${(slow.address() as AddressInfo).port}"] }
routes:
  - path: /*
    service: slow
`;

  it('answers 429 TOO_MANY_IN_FLIGHT to a client over the limit, and takes it again once one ends', async () => {
    gw = await startGatewayFromYaml(slowYaml('{ maxRequestsPerClient: 2 }'));
    const p = Number(new URL(gw.url).port);
    const first = [rawSend(p, [get('/a')], { holdMs: 5000 }), rawSend(p, [get('/b')], { holdMs: 5000 })];
    await until(() => held.length === 2);
    const third = await rawSend(p, [get('/c')]);
    expect(third.responses.map((r) => r.status)).toEqual([429]);
    expectError(third.responses[0]!.body, 'TOO_MANY_IN_FLIGHT');
    expect(held.length).toBe(2);
    held.shift()!.end('done');
    expect((await first[0]!).responses.map((r) => r.status)).toEqual([200]);
    const fourth = rawSend(p, [get('/d')], { holdMs: 5000 });
    await until(() => held.length === 2);
    for (const res of held.splice(0)) res.end('done');
    expect((await Promise.all([first[1]!, fourth])).map((o) => o.responses.map((r) => r.status))).toEqual([[200], [200]]);
  });

  it('counts the client behind trusted proxies by X-Forwarded-For', async () => {
    gw = await startGatewayFromYaml(slowYaml('{ maxRequestsPerClient: 1 }', 'trustedProxies: ["127.0.0.1/32"]'));
    const p = Number(new URL(gw.url).port);
    const a = rawSend(p, [get('/a', 'X-Forwarded-For: 203.0.113.1\r\n')], { holdMs: 5000 });
    const b = rawSend(p, [get('/b', 'X-Forwarded-For: 203.0.113.2\r\n')], { holdMs: 5000 });
    await until(() => held.length === 2);
    const again = await rawSend(p, [get('/c', 'X-Forwarded-For: 203.0.113.1\r\n')]);
    expect(again.responses.map((r) => r.status)).toEqual([429]);
    for (const res of held.splice(0)) res.end('done');
    expect((await Promise.all([a, b])).map((o) => o.responses.map((r) => r.status))).toEqual([[200], [200]]);
  });
});

describe('configuration', () => {
  const config = (limits: string): unknown => parseConfig(`
limits: ${limits}
services:
  api: { upstreams: ["http://127.0.0.1:1"] }
routes:
  - { path: /*, service: api }
`, 'limits.yaml', {});

  it('accepts every key, and refuses what uWS could never apply or a typo', () => {
    expect(() => config('{ maxHeaderBytes: 16384, maxHeaders: 40, maxUrlLength: 4096, bodyIdleTimeout: 10s, maxRequestsPerClient: 100 }')).not.toThrow();
    expect(() => config('{ bodyIdleTimeout: false, maxRequestsPerClient: false }')).not.toThrow();
    expect(() => config('{ maxHeaders: 49 }')).toThrow(/maxHeaders/);
    expect(() => config('{ maxConnectionsPerClient: 10 }')).toThrow(/maxConnectionsPerClient/);
    expect(() => config('{ bodyIdleTimeout: soon }')).toThrow(/bodyIdleTimeout/);
  });

  it('refuses bad options in code with a TypeError when the limits are built', () => {
    expect(() => new EdgeLimits({ maxHeaders: 100 })).toThrow(TypeError);
    expect(() => new EdgeLimits({ maxUrlLength: 0 })).toThrow(TypeError);
    expect(() => new EdgeLimits({ maxRequestsPerClient: 1.5 })).toThrow(TypeError);
    expect(() => new EdgeLimits({ bodyIdleTimeout: 'soon' })).toThrow(TypeError);
    expect(new EdgeLimits().maxHeaderBytes).toBe(32768);
  });
});
