import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { HealthReport } from '../../lib/upstream/health-view.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

async function get(url: string): Promise<{ status: number; json: unknown }> {
  const res = await request(url);
  return { status: res.statusCode, json: await res.body.json() };
}

describe('GET /__rxgate/health', () => {
  it('lists every service and instance, 200 while each service has one in rotation, 503 once one has none; /__rxgate/live stays 200', async () => {
    let sick = false;
    const up = await startUpstream((req, res) => {
      req.resume();
      if (req.url?.endsWith('/health') === true) return void res.writeHead(sick ? 500 : 200).end();
      res.end('ok');
    });
    open.push(up);
    const gw = await startGatewayFromYaml(`
services:
  users:
    upstreams: ["${up.url}", { url: "${up.url}/v2", weight: 2 }]
    balancer: least-request
    health: { path: /health, interval: 30ms, unhealthyAfter: 1, healthyAfter: 1 }
    panic: false
  orders:
    upstreams: ["${up.url}"]
    circuitBreaker: { perInstance: true }
routes:
  - { path: /users/*, service: users }
  - { path: /orders/*, service: orders }
`);
    open.push(gw);
    expect((await request(`${gw.url}/orders/1`)).statusCode).toBe(200);
    await vi.waitFor(async () => {
      const { status, json } = await get(`${gw.url}/__rxgate/health`);
      expect(status).toBe(200);
      const report = json as HealthReport;
      expect(report.status).toBe('ok');
      expect(report.services.users!.balancer).toBe('least-request');
      expect(report.services.users!.instances).toHaveLength(2);
      expect(report.services.users!.instances[1]).toMatchObject({ url: `${up.url}/v2`, weight: 2, healthy: true, ejected: false, ejectedUntil: null, inFlight: 0 });
      expect(report.services.users!.instances[0]!.lastCheck).toMatchObject({ ok: true, status: 200 });
      expect(report.services.orders!.instances[0]!.latencyMs).toBeGreaterThan(0);
      // perInstance breaking is the instance's ejection state, shown per instance.
      expect(report.services.orders!.instances[0]).toMatchObject({ ejected: false, ejectedUntil: null });
    }, { timeout: 5_000, interval: 20 });

    sick = true;
    await vi.waitFor(async () => {
      const { status, json } = await get(`${gw.url}/__rxgate/health`);
      expect(status).toBe(503);
      const report = json as HealthReport;
      expect(report.status).toBe('unavailable');
      expect(report.services.users!.status).toBe('unavailable');
      expect(report.services.users!.instances[0]!.lastCheck).toMatchObject({ ok: false, status: 500 });
      expect(report.services.orders!.status).toBe('ok');
    }, { timeout: 5_000, interval: 20 });
    const refused = await get(`${gw.url}/users/1`);
    expect(refused).toEqual({ status: 503, json: { error: { code: 'NO_HEALTHY_UPSTREAM', message: 'no healthy upstream for service users' } } });
    expect(await get(`${gw.url}/__rxgate/live`)).toEqual({ status: 200, json: { status: 'ok' } });
  });
});
