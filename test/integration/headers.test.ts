import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { forward, type ForwardOptions } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { header, headerValues, rawRequest } from '../support/http.ts';
import { startRawUpstream } from '../support/raw-http.ts';
import { startGateway, startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The default id: 64 random bits per process, then a counter. */
const COUNTER_ID = /^([0-9a-f]{16})-(\d+)$/;

let upstream: TestUpstream;
let gateway: (Gateway & { url: string }) | undefined;
let seen: IncomingMessage[];
let respond: (req: IncomingMessage, res: ServerResponse) => void;
let service: Service;

async function gatewayWith(options: ForwardOptions = {}): Promise<Gateway & { url: string }> {
  service = new Service('up', { upstreams: [upstream.url] });
  gateway = await startGateway([{ path: '/api/*', handler: forward(service, options) }], { services: [service] });
  return gateway;
}

beforeEach(async () => {
  seen = [];
  respond = (_req, res) => res.end('ok');
  upstream = await startUpstream((req, res) => {
    seen.push(req);
    req.resume();
    req.on('end', () => respond(req, res));
  });
});

afterEach(async () => {
  await gateway?.close();
  gateway = undefined;
  await upstream.close();
});

describe('hop-by-hop headers', () => {
  it('drops hop-by-hop request headers and every header the Connection header names', async () => {
    const gw = await gatewayWith();
    const res = await rawRequest(gw.url, [
      'GET /api/x HTTP/1.1',
      'Host: gw',
      'Connection: keep-alive, X-Secret, x-other-secret',
      'Keep-Alive: timeout=5',
      'Proxy-Authorization: Basic Zm9vOmJhcg==',
      'Proxy-Connection: keep-alive',
      'TE: trailers',
      'Trailer: x-checksum',
      'X-Secret: hidden',
      'X-Other-Secret: hidden too',
      'X-Kept: visible',
      '', '',
    ].join('\r\n'));
    expect(res.status).toBe(200);
    const h = seen[0]!.headers;
    for (const name of ['keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'x-secret', 'x-other-secret']) {
      expect(h[name], name).toBeUndefined();
    }
    // undici may announce its own keep-alive, but never the client's tokens.
    expect(h.connection ?? '').not.toMatch(/secret/i);
    expect(h['x-kept']).toBe('visible');
  });

  it('drops the client\'s Upgrade header', async () => {
    const gw = await gatewayWith();
    const res = await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    expect(res.status).toBe(200);
    expect(seen[0]!.headers.upgrade).toBeUndefined();
  });

  it('does not pass the client\'s Transfer-Encoding on; the upstream still gets the whole body', async () => {
    const gw = await gatewayWith();
    let body = '';
    upstream.server.removeAllListeners('request');
    upstream.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      seen.push(req);
      req.setEncoding('latin1');
      req.on('data', (d: string) => { body += d; });
      req.on('end', () => res.end('done'));
    });
    const res = await rawRequest(gw.url, 'POST /api/x HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    // Either refused outright or forwarded without the client's codings.
    if (res.status === 200) {
      expect(seen[0]!.headers['transfer-encoding'] ?? '').not.toMatch(/gzip/);
      expect(body).toBe('abc');
    } else {
      expect(res.status).toBe(400);
    }
  });

  it('drops hop-by-hop response headers and every header the upstream\'s Connection header names', async () => {
    const gw = await gatewayWith();
    respond = (_req, res) => {
      res.setHeader('Connection', 'keep-alive, X-Resp-Secret');
      res.setHeader('Keep-Alive', 'timeout=5');
      res.setHeader('Proxy-Authenticate', 'Basic realm="up"');
      res.setHeader('Proxy-Connection', 'keep-alive');
      res.setHeader('Trailer', 'x-checksum');
      res.setHeader('Upgrade', 'h2c');
      res.setHeader('TE', 'trailers');
      res.setHeader('X-Resp-Secret', 'hidden');
      res.setHeader('X-Kept', 'visible');
      res.end('body');
    };
    const res = await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(res.status).toBe(200);
    const names = res.headerLines.map(([n]) => n);
    for (const name of ['keep-alive', 'proxy-authenticate', 'proxy-connection', 'trailer', 'upgrade', 'te', 'x-resp-secret', 'connection']) {
      expect(names, name).not.toContain(name);
    }
    expect(header(res, 'x-kept')).toBe('visible');
    expect(res.body.toString()).toBe('body');
  });
});

describe('forwarding headers', () => {
  it('sets X-Forwarded-For, X-Forwarded-Proto, X-Forwarded-Host and X-Real-IP', async () => {
    const gw = await gatewayWith();
    await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: shop.example:8443\r\n\r\n');
    const h = seen[0]!.headers;
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('shop.example:8443');
    expect(h['x-real-ip']).toBe('127.0.0.1');
  });

  it('appends the client address to an existing X-Forwarded-For and replaces a spoofed X-Real-IP', async () => {
    const gw = await gatewayWith();
    await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.1\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n');
    const h = seen[0]!.headers;
    expect(h['x-forwarded-for']).toBe('203.0.113.7, 10.0.0.1, 127.0.0.1');
    expect(h['x-real-ip']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(seen[0]!.rawHeaders.filter((n) => n.toLowerCase() === 'x-forwarded-for')).toHaveLength(1);
  });

  it('rewrites Host to the upstream\'s by default', async () => {
    const gw = await gatewayWith();
    await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: shop.example\r\n\r\n');
    expect(seen[0]!.headers.host).toBe(`127.0.0.1:${upstream.port}`);
  });

  it('keeps the client\'s Host with preserveHost: true', async () => {
    const gw = await gatewayWith({ preserveHost: true });
    await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: shop.example\r\n\r\n');
    expect(seen[0]!.headers.host).toBe('shop.example');
    expect(seen[0]!.rawHeaders.filter((n) => n.toLowerCase() === 'host')).toHaveLength(1);
  });

  it('sets Host to a fixed name with preserveHost: "name"', async () => {
    const gw = await gatewayWith({ preserveHost: 'internal.example' });
    await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: shop.example\r\n\r\n');
    expect(seen[0]!.headers.host).toBe('internal.example');
  });

  // uWS itself cuts a header value at its first non-ASCII byte, before rxgate sees it:
  // kept as an expected failure so it turns red (and can become a plain test) once fixed.
  it.fails('passes non-ASCII request header bytes upstream unchanged (fails: uWS cuts the value at the first non-ASCII byte)', async () => {
    const gw = await gatewayWith();
    const value = Buffer.from('café ☕', 'utf8');
    await rawRequest(gw.url, Buffer.concat([Buffer.from('GET /api/x HTTP/1.1\r\nHost: gw\r\nX-Name: '), value, Buffer.from('\r\n\r\n')]));
    // node:http reads header bytes as latin1.
    expect(Buffer.from(seen[0]!.headers['x-name'] as string, 'latin1')).toEqual(value);
  });

  it('passes non-ASCII response header bytes to the client unchanged', async () => {
    const value = Buffer.from('café ☕', 'utf8');
    // node:http would re-encode the value, so this upstream writes bytes itself.
    const raw = await startRawUpstream((socket) => {
      socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nX-Name: '), value, Buffer.from('\r\nContent-Length: 2\r\n\r\nok')]));
    });
    const rawService = new Service('raw', { upstreams: [raw.url] });
    const gw = await startGateway([{ path: '/*', handler: forward(rawService) }], { services: [rawService] });
    try {
      const res = await rawRequest(gw.url, 'GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
      expect(Buffer.from(header(res, 'x-name')!, 'latin1')).toEqual(value);
    } finally {
      await gw.close();
      await raw.close();
    }
  });
});

describe('request ids and timing', () => {
  it('generates an X-Request-Id (random prefix, counter) when the client sent none and uses it both ways', async () => {
    const gw = await gatewayWith();
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await request(`${gw.url}/api/x`);
      await res.body.dump();
      ids.push(res.headers['x-request-id'] as string);
      expect(seen[i]!.headers['x-request-id']).toBe(ids[i]);
    }
    const [first, second] = ids.map((id) => COUNTER_ID.exec(id));
    expect(first).not.toBeNull();
    expect(second![1]).toBe(first![1]);
    expect(Number(second![2])).toBe(Number(first![2]) + 1);
  });

  it('generates UUIDs instead with requestId: uuid', async () => {
    gateway = await startGatewayFromYaml(`requestId: uuid
services:
  up: { upstreams: ["${upstream.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /api/*, service: up }
`);
    const res = await request(`${gateway.url}/api/x`);
    await res.body.dump();
    const id = res.headers['x-request-id'];
    expect(id).toMatch(UUID);
    expect(seen[0]!.headers['x-request-id']).toBe(id);
  });

  it('generates a different id for every request', async () => {
    const gw = await gatewayWith();
    const ids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const res = await request(`${gw.url}/api/x`);
      await res.body.dump();
      ids.add(res.headers['x-request-id'] as string);
    }
    expect(ids.size).toBe(3);
  });

  it('keeps the client\'s X-Request-Id both ways', async () => {
    const gw = await gatewayWith();
    const res = await request(`${gw.url}/api/x`, { headers: { 'x-request-id': 'client-chosen-42' } });
    await res.body.dump();
    expect(res.headers['x-request-id']).toBe('client-chosen-42');
    expect(seen[0]!.headers['x-request-id']).toBe('client-chosen-42');
  });

  it('sends X-Request-Id once on the response even when the upstream echoes it', async () => {
    const gw = await gatewayWith();
    respond = (req, res) => {
      res.setHeader('x-request-id', req.headers['x-request-id']!);
      res.end('ok');
    };
    const res = await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: gw\r\nX-Request-Id: abc\r\n\r\n');
    expect(headerValues(res, 'x-request-id')).toEqual(['abc']);
  });

  it('adds X-Gateway-Response-Time to proxied responses', async () => {
    const gw = await gatewayWith();
    const res = await rawRequest(gw.url, 'GET /api/x HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(headerValues(res, 'x-gateway-response-time')).toHaveLength(1);
    expect(header(res, 'x-gateway-response-time')).toMatch(/^\d+(\.\d+)?ms$/);
  });

  it('adds X-Gateway-Response-Time and X-Request-Id to error responses', async () => {
    const gw = await gatewayWith();
    const res = await rawRequest(gw.url, 'GET /nowhere HTTP/1.1\r\nHost: gw\r\nX-Request-Id: err-1\r\n\r\n');
    expect(res.status).toBe(404);
    expect(header(res, 'x-gateway-response-time')).toMatch(/^\d+(\.\d+)?ms$/);
    expect(header(res, 'x-request-id')).toBe('err-1');
  });
});
