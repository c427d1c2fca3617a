import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { rawSend, startRawUpstream } from '../support/raw-http.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

async function named(name: string): Promise<TestUpstream> {
  const up = await startUpstream((req, res) => {
    req.resume();
    res.end(`${name} ${req.url}`);
  });
  open.push(up);
  return up;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string }> {
  const res = await request(url, { headers });
  return { status: res.statusCode, text: await res.body.text() };
}

describe('traffic shaping', () => {
  it('splits a route 90/10 between two services (within 5 points over 600 requests)', async () => {
    const v1 = await named('v1');
    const v2 = await named('v2');
    const gw = await startGatewayFromYaml(`
services:
  v1: { upstreams: ["${v1.url}"] }
  v2: { upstreams: ["${v2.url}"] }
routes:
  - path: /*
    backends: [{ service: v1, weight: 90 }, { service: v2, weight: 10 }]
`);
    open.push(gw);
    const counts = { v1: 0, v2: 0 };
    const n = 600;
    for (let i = 0; i < n; i += 6) {
      const batch = await Promise.all(Array.from({ length: 6 }, () => get(`${gw.url}/x`)));
      for (const r of batch) {
        expect(r.status).toBe(200);
        counts[r.text.split(' ')[0] as 'v1' | 'v2']++;
      }
    }
    expect(Math.abs(counts.v2 / n - 0.1)).toBeLessThan(0.05);
    expect(counts.v1 + counts.v2).toBe(n);
  });

  it('matches routes on headers, query parameters and cookies, in order, 404 when none holds', async () => {
    const beta = await named('beta');
    const mobile = await named('mobile');
    const stable = await named('stable');
    const gw = await startGatewayFromYaml(`
services:
  beta: { upstreams: ["${beta.url}"] }
  mobile: { upstreams: ["${mobile.url}"] }
  stable: { upstreams: ["${stable.url}"] }
routes:
  - { path: /api/*, service: beta, match: { cookies: { channel: beta } } }
  - { path: /api/*, service: beta, match: { query: { preview: true } } }
  - { path: /api/*, service: mobile, match: { headers: { User-Agent: { regex: "Mobile" } } } }
  - { path: /api/*, service: stable }
  - { path: /only/*, service: stable, match: { headers: { x-tenant: acme } } }
`);
    open.push(gw);
    expect((await get(`${gw.url}/api/a`, { cookie: 'x=1; channel=beta' })).text).toBe('beta /api/a');
    expect((await get(`${gw.url}/api/a?preview`)).text).toBe('beta /api/a?preview');
    expect((await get(`${gw.url}/api/a`, { 'user-agent': 'Foo Mobile/1' })).text).toBe('mobile /api/a');
    expect((await get(`${gw.url}/api/a`, { cookie: 'channel=stable' })).text).toBe('stable /api/a');
    expect((await get(`${gw.url}/only/a`, { 'x-tenant': 'acme' })).text).toBe('stable /only/a');
    const none = await get(`${gw.url}/only/a`, { 'x-tenant': 'other' });
    expect(none.status).toBe(404);
    expect(JSON.parse(none.text)).toMatchObject({ error: { code: 'ROUTE_NOT_FOUND' } });
  });
  it('matches a query parameter sent as raw UTF-8 bytes by its characters, and forwards the bytes as received', async () => {
    // node:http refuses such a target, and undici will not send one: raw sockets on both sides.
    const fr = await startRawUpstream();
    open.push(fr);
    const other = await named('other');
    const gw = await startGatewayFromYaml(`
services:
  fr: { upstreams: ["${fr.url}"] }
  other: { upstreams: ["${other.url}"] }
routes:
  - { path: /api/*, service: fr, match: { query: { lang: café } } }
  - { path: /api/*, service: other }
`);
    open.push(gw);
    const sent = Buffer.concat([Buffer.from('GET /api/a?lang='), Buffer.from('café', 'utf8'), Buffer.from(' HTTP/1.1\r\nhost: x\r\n\r\n')]);
    const out = await rawSend(Number(new URL(gw.url).port), [sent]);
    expect(out.responses[0]).toMatchObject({ status: 200, body: 'ok' });
    expect(fr.heads.map((h) => h.subarray(0, h.indexOf(' HTTP/1.1')).toString('hex'))).toEqual([Buffer.from('GET /api/a?lang=café', 'utf8').toString('hex')]);
  });
});
