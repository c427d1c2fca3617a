import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

describe('hedged requests from YAML', () => {
  it('answers a GET from the other instance when the first sits on it, aborts the loser, and counts the hedges', async () => {
    const aborted: string[] = [];
    const timers = new Set<NodeJS.Timeout>();
    const instance = async (name: string, delayMs: number): Promise<TestUpstream> => {
      const up = await startUpstream((req, res) => {
        req.resume();
        const t = setTimeout(() => res.end(name), delayMs);
        timers.add(t);
        res.on('close', () => {
          if (!res.writableFinished) aborted.push(name);
          clearTimeout(t);
        });
      });
      open.push(up);
      return up;
    };
    const stuck = await instance('stuck', 5_000);
    const fast = await instance('fast', 0);
    const gw = await startGatewayFromYaml(`
metrics: { public: true }
services:
  svc:
    upstreams: ["${stuck.url}", "${fast.url}"]
    balancer: round-robin
    hedge: { after: 30ms, max: 1 }
routes:
  - { path: /*, service: svc }
`);
    open.push(gw);
    for (let i = 0; i < 4; i++) {
      const res = await request(`${gw.url}/x`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('fast');
    }
    const metrics = await (await request(`${gw.url}/__rxgate/metrics`)).body.text();
    const hedges = (outcome: string): number =>
      Number(new RegExp(`^rxgate_hedges_total\\{service="svc",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
    // Round-robin sends two of the four to the stuck instance first: their hedges, to the fast one, win. One sent
    // to the fast instance hedges too when its answer takes over 30 ms (a loaded machine), and that hedge, to the
    // stuck instance, loses.
    expect(hedges('won')).toBe(2);
    expect(hedges('sent')).toBe(2 + hedges('lost'));
    // Every loser was at the stuck instance and is aborted as the winner answers; its 'close' can come a little later.
    await vi.waitFor(() => expect(aborted).toEqual(Array<string>(hedges('sent')).fill('stuck')), { timeout: 5000, interval: 5 });
    for (const t of timers) clearTimeout(t);
  });
});
