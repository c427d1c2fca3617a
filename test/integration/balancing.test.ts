import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { startGateway, startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * Balancers against several real instances on loopback: shares over many
 * requests (each with its tolerance), a slow instance under p2c-ewma, and
 * hash stickiness when an instance joins.
 */
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

/** An instance that answers its name, after `delayMs`, counting hits. */
async function instance(name: string, hits: Map<string, number>, delayMs = 0): Promise<TestUpstream> {
  const up = await startUpstream((req, res) => {
    req.resume();
    hits.set(name, (hits.get(name) ?? 0) + 1);
    const answer = (): void => void res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
    if (delayMs > 0) setTimeout(answer, delayMs);
    else answer();
  });
  open.push(up);
  return up;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, text: await res.body.text() };
}

async function yamlGateway(yaml: string): Promise<{ url: string }> {
  const gw = await startGatewayFromYaml(yaml);
  open.push(gw);
  return gw;
}

/** `n` requests, `concurrency` at a time; the names that answered. */
async function spread(url: string, n: number, concurrency = 1): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < n) {
      sent++;
      const res = await get(url);
      expect(res.status).toBe(200);
      seen.set(res.text, (seen.get(res.text) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return seen;
}

describe('balancers over real instances', () => {
  it('round-robin gives weights 1:3 exactly 25% and 75%', async () => {
    const hits = new Map<string, number>();
    const a = await instance('a', hits);
    const b = await instance('b', hits);
    const gw = await yamlGateway(`
services:
  svc:
    upstreams: ["${a.url}", { url: "${b.url}", weight: 3 }]
    balancer: round-robin
routes:
  - { path: /*, service: svc }
`);
    const seen = await spread(`${gw.url}/x`, 200);
    expect(seen.get('a')).toBe(50);
    expect(seen.get('b')).toBe(150);
  });

  it('random with weights 1:3 stays within 10 points of 25% and 75% over 400 requests', async () => {
    const hits = new Map<string, number>();
    const a = await instance('a', hits);
    const b = await instance('b', hits);
    const gw = await yamlGateway(`
services:
  svc:
    upstreams: ["${a.url}", { url: "${b.url}", weight: 3 }]
    balancer: random
routes:
  - { path: /*, service: svc }
`);
    const seen = await spread(`${gw.url}/x`, 400, 4);
    expect(Math.abs((seen.get('a') ?? 0) / 400 - 0.25)).toBeLessThan(0.1);
  });

  it('least-request shares equal instances within 15 points of even, p2c-ewma within 30', async () => {
    for (const balancer of ['least-request', 'p2c-ewma']) {
      const hits = new Map<string, number>();
      const a = await instance('a', hits);
      const b = await instance('b', hits);
      const gw = await yamlGateway(`
services:
  svc:
    upstreams: ["${a.url}", "${b.url}"]
    balancer: ${balancer}
routes:
  - { path: /*, service: svc }
`);
      const seen = await spread(`${gw.url}/x`, 300, 4);
      // p2c-ewma follows measured latency, which a loaded test machine skews for a while (0.66 / 0.34
      // seen with four test files at once, 0.83 / 0.17 with the whole suite and a bench): neither
      // instance starves (each gets a tenth or more) is what it promises here.
      expect(Math.abs((seen.get('a') ?? 0) / 300 - 0.5), balancer).toBeLessThan(balancer === 'p2c-ewma' ? 0.4 : 0.15);
    }
  });

  it('p2c-ewma (the default for several instances) sends a 50 ms slower instance under a tenth of the traffic', async () => {
    const hits = new Map<string, number>();
    const a = await instance('a', hits);
    const b = await instance('b', hits);
    const slow = await instance('slow', hits, 50);
    const gw = await yamlGateway(`
services:
  svc:
    upstreams: ["${a.url}", "${b.url}", "${slow.url}"]
routes:
  - { path: /*, service: svc }
`);
    const seen = await spread(`${gw.url}/x`, 300, 4);
    expect(seen.get('slow') ?? 0).toBeLessThan(30);
    expect((seen.get('a') ?? 0) + (seen.get('b') ?? 0)).toBeGreaterThan(270);
  });

  it('hash keeps a key on its instance, and most keys stay put when an instance joins', async () => {
    const hits = new Map<string, number>();
    const ups = [await instance('a', hits), await instance('b', hits), await instance('c', hits)];
    const d = await instance('d', hits);
    const service = new Service('sticky', { upstreams: ups.map((u) => u.url), balancer: 'hash', hash: { header: 'x-user' } });
    const gw = await startGateway([{ path: '/*', handler: forward(service) }], { services: [service] });
    open.push(gw);
    const users = Array.from({ length: 120 }, (_, i) => `user-${i}`);
    const place = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const u of users) out.push((await get(`${gw.url}/x`, { 'x-user': u })).text);
      return out;
    };
    const before = await place();
    expect(await place()).toEqual(before);
    expect(new Set(before).size).toBe(3);
    service.setUpstreams([...ups.map((u) => u.url), d.url]);
    const after = await place();
    const stayed = after.filter((name, i) => name === before[i]).length;
    // About a quarter of the keys should move to d, and only to d.
    expect(stayed / users.length).toBeGreaterThan(0.6);
    for (const [i, name] of after.entries()) if (name !== before[i]) expect(name).toBe('d');
  });
});

describe('ejection and recovery over real instances', () => {
  it('ejects a killed instance without a failed GET, and takes it back once its health checks pass', async () => {
    const hits = new Map<string, number>();
    const a = await instance('a', hits);
    const b = await instance('b', hits);
    let sick = false;
    const c = await startUpstream((req, res) => {
      req.resume();
      if (req.url === '/health') return void res.writeHead(sick ? 503 : 200).end();
      hits.set('c', (hits.get('c') ?? 0) + 1);
      res.end('c');
    });
    open.push(c);
    const gw = await yamlGateway(`
services:
  svc:
    upstreams: ["${a.url}", "${b.url}", "${c.url}"]
    balancer: round-robin
    health: { path: /health, interval: 30ms, unhealthyAfter: 1, healthyAfter: 1 }
routes:
  - { path: /*, service: svc }
`);
    expect((await spread(`${gw.url}/x`, 30)).get('c')).toBe(10);
    // Kill a: its connections are refused from now on; every GET still succeeds.
    await a.close();
    const during = await spread(`${gw.url}/x`, 60, 3);
    expect(during.get('a') ?? 0).toBe(0);
    // c goes sick by its checks, then recovers.
    sick = true;
    await vi.waitFor(async () => expect((await spread(`${gw.url}/x`, 6)).get('c') ?? 0).toBe(0), { timeout: 5_000, interval: 20 });
    sick = false;
    await vi.waitFor(async () => expect((await spread(`${gw.url}/x`, 6)).get('c') ?? 0).toBeGreaterThan(0), { timeout: 5_000, interval: 20 });
  });

  it('ejects an instance on the statuses listed in ejectOnStatuses, never more than maxEjectionPercent of them', async () => {
    const hits = new Map<string, number>();
    const a = await instance('a', hits);
    const sick = await startUpstream((req, res) => {
      req.resume();
      hits.set('sick', (hits.get('sick') ?? 0) + 1);
      res.writeHead(503).end('sick');
    });
    open.push(sick);
    const gw = await yamlGateway(`
services:
  svc:
    upstreams: ["${sick.url}", "${a.url}"]
    balancer: round-robin
    ejectOnStatuses: [502, 503, 504]
routes:
  - { path: /*, service: svc }
`);
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await get(`${gw.url}/x`)).status);
    // The first 503 is the sick instance's answer; from then on it is out.
    expect(statuses).toEqual([503, 200, 200, 200, 200, 200, 200, 200, 200, 200]);
    expect(hits.get('sick')).toBe(1);
  });
});
