import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readBody } from '../support/http.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

async function real(): Promise<TestUpstream> {
  const up = await startUpstream((req, res) => void readBody(req).then((body) => res.end(`real ${req.method} ${req.url} ${body}`)));
  open.push(up);
  return up;
}

async function gateway(realUrl: string, shadowUrl: string, mirror: string): Promise<{ url: string }> {
  const gw = await startGatewayFromYaml(`
metrics: { public: true }
services:
  api: { upstreams: ["${realUrl}"] }
  shadow: { upstreams: ["${shadowUrl}"], timeout: 10s }
routes:
  - { path: /*, service: api, mirror: ${mirror} }
`);
  open.push(gw);
  return gw;
}

describe('request mirroring', () => {
  it('sends a copy of each request, body included, to the shadow service and answers from the real one', async () => {
    const copies: string[] = [];
    const shadow = await startUpstream((req, res) => void readBody(req).then((body) => {
      copies.push(`${req.method} ${req.url} ${body}`);
      res.end('shadow answer');
    }));
    open.push(shadow);
    const gw = await gateway((await real()).url, shadow.url, '{ service: shadow }');
    const res = await request(`${gw.url}/orders?x=1`, { method: 'POST', body: 'order 1' });
    expect(await res.body.text()).toBe('real POST /orders?x=1 order 1');
    const get = await request(`${gw.url}/items`);
    expect(await get.body.text()).toBe('real GET /items ');
    await vi.waitFor(() => expect(copies.sort()).toEqual(['GET /items ', 'POST /orders?x=1 order 1']));
    const health = await (await request(`${gw.url}/__rxgate/health`)).body.json() as { services: Record<string, unknown> };
    expect(Object.keys(health.services).sort()).toEqual(['api', 'shadow']);
  });

  it('never delays or fails the client when the shadow hangs, fails or refuses, and bounds copies in flight', async () => {
    let hung = 0;
    const hanging = await startUpstream((req) => {
      req.resume();
      hung++;
    });
    open.push(hanging);
    const gw = await gateway((await real()).url, hanging.url, '{ service: shadow, maxInFlight: 3 }');
    for (let i = 0; i < 8; i++) {
      const res = await request(`${gw.url}/x/${i}`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe(`real GET /x/${i} `);
    }
    await vi.waitFor(() => expect(hung).toBe(3));
    const metrics = await (await request(`${gw.url}/__rxgate/metrics`)).body.text();
    expect(metrics).toMatch(/rxgate_mirror_total\{service="shadow",outcome="dropped"\} 5/);

    const failing = await startUpstream((req) => req.socket.destroy());
    open.push(failing);
    const gw2 = await gateway((await real()).url, failing.url, '{ service: shadow }');
    const refused = await gateway((await real()).url, 'http://127.0.0.1:1', '{ service: shadow }');
    for (const g of [gw2, refused]) {
      for (let i = 0; i < 3; i++) {
        const res = await request(`${g.url}/y`, { method: 'PUT', body: 'b' });
        expect(res.statusCode).toBe(200);
        expect(await res.body.text()).toBe('real PUT /y b');
      }
    }
  });

  it('mirrors only the configured share, and skips bodies over maxBodyBytes', async () => {
    const copies: string[] = [];
    const shadow = await startUpstream((req, res) => void readBody(req).then((body) => {
      copies.push(body);
      res.end();
    }));
    open.push(shadow);
    const gw = await gateway((await real()).url, shadow.url, '{ service: shadow, percent: 25, maxBodyBytes: 4 }');
    for (let i = 0; i < 200; i++) await (await request(`${gw.url}/z`, { method: 'POST', body: i % 2 === 0 ? 'ok' : 'too long' })).body.text();
    await new Promise((r) => setTimeout(r, 100));
    expect(copies.every((c) => c === 'ok')).toBe(true);
    // 25% of the 100 short ones, within 12 points.
    expect(Math.abs(copies.length / 100 - 0.25)).toBeLessThan(0.12);
  });
});
