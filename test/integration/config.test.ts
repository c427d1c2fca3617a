import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An upstream answering `<name> <method> <url> host=<host>`; `/health` answers 200. */
async function namedUpstream(name: string, handler?: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<TestUpstream> {
  const up = await startUpstream((req, res) => {
    req.resume();
    if (handler?.(req, res) === true) return;
    res.end(`${name} ${req.method} ${req.url} host=${req.headers.host}`);
  });
  cleanups.push(() => up.close());
  return up;
}

async function gatewayFromYaml(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<Gateway & { url: string }> {
  const gw = await startGatewayFromYaml(yaml, undefined, env);
  cleanups.push(() => gw.close());
  return gw;
}

async function text(url: string, init: Parameters<typeof request>[1] = {}): Promise<[number, string]> {
  const res = await request(url, init);
  return [res.statusCode, await res.body.text()];
}

describe('gateway from YAML', () => {
  it('routes through rewrites, methods and environment-substituted upstreams', async () => {
    const users = await namedUpstream('users');
    const orders = await namedUpstream('orders');
    const gw = await gatewayFromYaml(`
services:
  users:
    upstreams: ["\${USERS_URL:-http://127.0.0.1:1}"]
  orders:
    upstreams: ["\${ORDERS_URL}"]
routes:
  - path: /api/users/*
    service: users
    methods: [GET, POST]
    rewrite: { pattern: "^/api/users", replacement: "/users" }
  - path: /api/orders/*
    service: orders
    rewrite: { stripPrefix: /api }
    preserveHost: true
`, { USERS_URL: users.url, ORDERS_URL: orders.url });

    expect(await text(`${gw.url}/api/users/42?x=1`)).toEqual([200, `users GET /users/42?x=1 host=127.0.0.1:${users.port}`]);
    expect((await text(`${gw.url}/api/users/42`, { method: 'DELETE' }))[0]).toBe(405);
    expect(await text(`${gw.url}/api/orders/7`, { headers: { host: 'shop.example' } })).toEqual([200, 'orders GET /orders/7 host=shop.example']);
    expect((await text(`${gw.url}/elsewhere`))[0]).toBe(404);
  });

  it('uses an upstream URL\'s path as a prefix for every request', async () => {
    const up = await namedUpstream('base');
    const gw = await gatewayFromYaml(`
services:
  base: { upstreams: ["${up.url}/v1/"] }
routes:
  - { path: /*, service: base }
`);
    expect(await text(`${gw.url}/things?q=1`)).toEqual([200, `base GET /v1/things?q=1 host=127.0.0.1:${up.port}`]);
  });

  it('spreads requests round-robin over a service\'s upstreams with balancer: round-robin', async () => {
    const a = await namedUpstream('a');
    const b = await namedUpstream('b');
    const gw = await gatewayFromYaml(`
services:
  pair: { upstreams: ["${a.url}", "${b.url}"], balancer: round-robin }
routes:
  - { path: /*, service: pair }
`);
    const names = [];
    for (let i = 0; i < 4; i++) names.push((await text(`${gw.url}/x`))[1].split(' ')[0]);
    expect(names.sort()).toEqual(['a', 'a', 'b', 'b']);
  });

  it('answers 504 when the upstream is slower than the service timeout given as a duration string', async () => {
    const slow = await namedUpstream('slow', () => true); // never answers
    const gw = await gatewayFromYaml(`
services:
  slow: { upstreams: ["${slow.url}"], timeout: 250ms }
routes:
  - { path: /*, service: slow }
`);
    const [status, body] = await text(`${gw.url}/x`);
    expect(status).toBe(504);
    expect(JSON.parse(body)).toMatchObject({ error: { code: 'GATEWAY_TIMEOUT' } });
  });

  it('answers 503 once YAML health checks mark the only upstream down, with panic: false', async () => {
    const sick = await namedUpstream('sick', (req, res) => {
      if (req.url !== '/healthz') return false;
      res.statusCode = 500;
      res.end();
      return true;
    });
    const gw = await gatewayFromYaml(`
services:
  sick:
    upstreams: ["${sick.url}"]
    health: { path: /healthz, interval: 30ms, unhealthyAfter: 1 }
    panic: false
routes:
  - { path: /*, service: sick }
`);
    await vi.waitFor(async () => {
      const [status, body] = await text(`${gw.url}/x`);
      expect(status).toBe(503);
      expect(JSON.parse(body)).toMatchObject({ error: { code: 'NO_HEALTHY_UPSTREAM' } });
    }, { timeout: 5_000, interval: 20 });
  });

  it('still forwards to the only upstream its health checks mark down, by default (panic)', async () => {
    let probes = 0;
    const sick = await namedUpstream('sick', (req, res) => {
      if (req.url !== '/healthz') return false;
      probes++;
      res.statusCode = 500;
      res.end();
      return true;
    });
    const gw = await gatewayFromYaml(`
services:
  sick:
    upstreams: ["${sick.url}"]
    health: { path: /healthz, interval: 30ms, unhealthyAfter: 1 }
routes:
  - { path: /*, service: sick }
`);
    // After a failed probe the instance is unhealthy; with no other, it is used anyway.
    await vi.waitFor(() => expect(probes).toBeGreaterThanOrEqual(2), { timeout: 5_000, interval: 20 });
    expect(await text(`${gw.url}/x`)).toEqual([200, expect.stringMatching(/^sick GET \/x /)]);
  });

  it('serves examples/demo.yaml against upstreams given by environment variables', async () => {
    const users = await namedUpstream('users');
    const orders1 = await namedUpstream('orders1');
    const orders2 = await namedUpstream('orders2');
    const yaml = readFileSync(join(import.meta.dirname, '../../examples/demo.yaml'), 'utf8');
    const gw = await gatewayFromYaml(yaml, { USERS_URL: users.url, ORDERS_URL: orders1.url, ORDERS_URL_2: orders2.url });
    expect((await text(`${gw.url}/api/users/42`))[1]).toMatch(/^users GET \/users\/42 /);
    const seen = new Set<string>();
    for (let i = 0; i < 2; i++) seen.add((await text(`${gw.url}/api/orders/7`))[1].split(' ').slice(0, 3).join(' '));
    expect([...seen].sort()).toEqual(['orders1 GET /orders/7', 'orders2 GET /orders/7']);
  });
});

describe('built-in endpoints', () => {
  it('answers GET /__rxgate/health with 200', async () => {
    const up = await namedUpstream('up');
    const gw = await gatewayFromYaml(`
services: { up: { upstreams: ["${up.url}"] } }
routes: [{ path: /*, service: up }]
`);
    const res = await request(`${gw.url}/__rxgate/health`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(await res.body.json()).toMatchObject({ status: 'ok', services: { up: { status: 'ok', instances: [{ url: up.url, healthy: true, ejected: false }] } } });
  });

  it('counts answered requests on GET /__rxgate/metrics (metrics: { public: true })', async () => {
    const up = await namedUpstream('up');
    const gw = await gatewayFromYaml(`
metrics: { public: true }
services: { up: { upstreams: ["${up.url}"] } }
routes: [{ name: everything, path: /*, service: up }]
`);
    await text(`${gw.url}/x`);
    await text(`${gw.url}/y`);
    const [status, metrics] = await text(`${gw.url}/__rxgate/metrics`);
    expect(status).toBe(200);
    expect(metrics).toMatch(/^rxgate_requests_total\{route="everything",status="2xx"\} 2$/m);
  });
});
