import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * ipFilter with trusted proxies and CORS through real gateways built from
 * YAML, with a real upstream that records what reaches it. The test client
 * is 127.0.0.1: trusted as a proxy, it speaks for other addresses in
 * X-Forwarded-For.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function recordingUpstream(): Promise<TestUpstream & { seen: IncomingHttpHeaders[]; methods: string[] }> {
  const seen: IncomingHttpHeaders[] = [];
  const methods: string[] = [];
  const up = await startUpstream((req, res) => {
    req.resume();
    seen.push(req.headers);
    methods.push(req.method!);
    res.setHeader('content-type', 'text/plain');
    res.setHeader('access-control-allow-origin', '*'); // the upstream's own: the gateway's policy replaces it
    res.end('hello');
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { seen, methods });
}

async function gateway(yaml: string): Promise<{ url: string }> {
  const gw = await startGatewayFromYaml(yaml);
  cleanups.push(() => gw.close());
  return gw;
}

async function send(url: string, init: { method?: string; headers?: Record<string, string> } = {}) {
  const res = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers ?? {}, headersTimeout: 5000, bodyTimeout: 5000 });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body };
}

describe('ipFilter from YAML, behind trusted proxies', () => {
  it('admits and refuses by the address in X-Forwarded-For when the peer is a trusted proxy', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
trustedProxies: [127.0.0.1/32, 10.0.0.0/8]
ipFilter: { deny: [203.0.113.0/24] }
services: { s: { upstreams: ["${up.url}"] } }
routes:
  - { path: /open/*, service: s }
  - { path: /office/*, service: s, ipFilter: { allow: [198.51.100.0/24, "2001:db8::/32"] } }
`);
    // Gateway-wide deny, through a chain of trusted hops.
    const denied = await send(`${gw.url}/open/x`, { headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.9, 10.1.1.1' } });
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body).error.code).toBe('IP_FORBIDDEN');
    // A forged entry left of the real client is never believed.
    expect((await send(`${gw.url}/open/x`, { headers: { 'x-forwarded-for': '203.0.113.9, 192.0.2.4' } })).status).toBe(200);
    // The route's allow list (its deny falls back to the top level's).
    expect((await send(`${gw.url}/office/x`, { headers: { 'x-forwarded-for': '198.51.100.7' } })).status).toBe(200);
    expect((await send(`${gw.url}/office/x`, { headers: { 'x-forwarded-for': '[2001:db8::5]:443, 10.0.0.1' } })).status).toBe(200);
    expect((await send(`${gw.url}/office/x`, { headers: { 'x-forwarded-for': '192.0.2.4' } })).status).toBe(403);
    // No X-Forwarded-For: the peer itself (127.0.0.1) is the client, not in the office list.
    expect((await send(`${gw.url}/office/x`)).status).toBe(403);
    expect(up.seen).toHaveLength(3);
  });

  it('ignores X-Forwarded-For from a peer that is not trusted', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
trustedProxies: [10.0.0.0/8]
services: { s: { upstreams: ["${up.url}"] } }
routes:
  - { path: /*, service: s, ipFilter: { allow: [127.0.0.1] } }
`);
    expect((await send(`${gw.url}/a`, { headers: { 'x-forwarded-for': '198.51.100.7' } })).status).toBe(200);
    expect((await send(`${gw.url}/a`)).status).toBe(200);
  });

  it('rate-limits by the client behind the proxy (key: ip)', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
trustedProxies: [127.0.0.1]
services: { s: { upstreams: ["${up.url}"] } }
routes:
  - { path: /*, service: s, rateLimit: { limit: 1, window: 1m } }
`);
    const as = (ip: string) => send(`${gw.url}/a`, { headers: { 'x-forwarded-for': ip } });
    expect((await as('198.51.100.1')).status).toBe(200);
    expect((await as('198.51.100.1')).status).toBe(429);
    expect((await as('198.51.100.2')).status).toBe(200);
  });

  it('refuses a route whose own pipeline leaves out ipFilter while a top-level filter is set', () => {
    const yaml = `
ipFilter: { deny: [203.0.113.0/24] }
services: { s: { upstreams: ["http://127.0.0.1:1"] } }
routes:
  - { path: /a, service: s, pipeline: [retry] }
  - { path: /b, service: s, pipeline: [retry], ipFilter: false }
  - { path: /c, service: s, pipeline: [ipFilter, retry] }
`;
    expect(() => parseConfig(yaml, 'test.yaml', {})).toThrow(/routes\[0\]\.pipeline: the top-level ipFilter/);
    expect(() => parseConfig(yaml, 'test.yaml', {})).not.toThrow(/routes\[[12]\]/);
    expect(() => parseConfig(`ipFilter: { allow: [10.0.0.0/33] }\nservices: { s: { upstreams: ["http://127.0.0.1:1"] } }\nroutes: [{ path: /a, service: s }]\n`, 'test.yaml', {}))
      .toThrow(/ipFilter\.allow\[0\]: expected an IP address or CIDR/);
  });
});

describe('cors from YAML', () => {
  const origin = 'https://app.example.com';
  const routes = (url: string) => `
services: { s: { upstreams: ["${url}"] } }
routes:
  - path: /api/*
    service: s
    auth: required
    cors: { origins: ["${origin}", "https://*.example.org"], credentials: true, exposeHeaders: [x-total], maxAge: 10m }
auth: { secret: "0123456789abcdef0123456789abcdef" }
`;

  it('answers a preflight without touching the upstream, before auth asks for a token', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(routes(up.url));
    const res = await send(`${gw.url}/api/items`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'authorization, content-type' } });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(origin);
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-allow-methods']).toContain('PUT');
    expect(res.headers['access-control-allow-headers']).toBe('authorization, content-type');
    expect(res.headers['access-control-max-age']).toBe('600');
    expect(String(res.headers.vary)).toMatch(/Origin/);
    const evil = await send(`${gw.url}/api/items`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'GET' } });
    expect(evil.status).toBe(403);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    expect(up.methods).toEqual([]);
  });

  it('adds CORS headers and Vary: Origin to actual requests, and to error answers', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(routes(up.url).replace('auth: required', 'auth: none'));
    const ok = await send(`${gw.url}/api/items`, { headers: { origin: 'https://a.example.org' } });
    expect(ok.status).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe('https://a.example.org');
    expect(ok.headers['access-control-expose-headers']).toBe('x-total');
    expect(ok.headers.vary).toBe('Origin');
    const other = await send(`${gw.url}/api/items`, { headers: { origin: 'https://evil.example' } });
    expect(other.status).toBe(200);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    expect(other.headers.vary).toBe('Origin');

    const authed = await gateway(routes(up.url));
    const unauthorized = await send(`${authed.url}/api/items`, { headers: { origin } });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers['access-control-allow-origin']).toBe(origin);
  });

  it('keeps cached responses origin-neutral', async () => {
    const up = await recordingUpstream();
    const gw = await gateway(`
services: { s: { upstreams: ["${up.url}"] } }
routes:
  - { path: /*, service: s, cache: { ttl: 1m }, cors: { origins: ["https://a.test", "https://b.test"] } }
`);
    const a = await send(`${gw.url}/x`, { headers: { origin: 'https://a.test' } });
    const b = await send(`${gw.url}/x`, { headers: { origin: 'https://b.test' } });
    expect(a.headers['access-control-allow-origin']).toBe('https://a.test');
    expect(b.headers['access-control-allow-origin']).toBe('https://b.test');
    expect(up.seen).toHaveLength(1);
  });

  it('refuses cors on a route whose methods leave out OPTIONS', async () => {
    await expect(startGatewayFromYaml(`
services: { s: { upstreams: ["http://127.0.0.1:1"] } }
routes: [{ path: /a, service: s, methods: [GET], cors: {} }]
`)).rejects.toThrow(/OPTIONS/);
  });
});
