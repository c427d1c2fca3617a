import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { serve, type Served } from '../../lib/lifecycle/serve.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { get } from '../support/answer.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * The admin listener: its own port, off the public routes, serving
 * /metrics, /health, /ready and /reload; the public /__rxgate/metrics is
 * opt-in (`metrics: { public: true }`).
 */

const dir = mkdtempSync(join(tmpdir(), 'rxgate-admin-'));
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function upstream(text: string): Promise<TestUpstream> {
  const up = await startUpstream((req, res) => {
    req.resume();
    res.end(text);
  });
  cleanups.push(() => up.close());
  return up;
}

let files = 0;
async function start(yaml: string): Promise<Served & { url: string; admin: string; file: string }> {
  const file = join(dir, `gw-${files++}.yaml`);
  writeFileSync(file, yaml);
  const served = await serve(parseConfig(yaml, file), defaultPipeline, {
    file, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, adminPort: 0,
  });
  cleanups.push(() => served.close());
  return Object.assign(served, { url: `http://127.0.0.1:${served.port}`, admin: `http://127.0.0.1:${served.adminPort}`, file });
}

const config = (url: string, extra = ''): string => `
admin: { host: 127.0.0.1, port: 9901 }
reload: { watch: false }
${extra}
services:
  api: { upstreams: ["${url}"] }
routes:
  - { name: everything, path: /*, service: api }
`;

describe('the admin listener', () => {
  it('serves the metrics on GET /metrics, counting requests the public listener answered', async () => {
    const up = await upstream('hello');
    const gw = await start(config(up.url));
    expect(gw.adminPort).not.toBe(gw.port);
    expect((await get(`${gw.url}/a`)).status).toBe(200);
    expect((await get(`${gw.url}/b`)).status).toBe(200);
    const metrics = await get(`${gw.admin}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.body).toMatch(/^rxgate_requests_total\{route="everything",status="2xx"\} 2$/m);
  });

  it('leaves /__rxgate/metrics to the routes unless metrics.public is true', async () => {
    const up = await upstream('from the upstream');
    const off = await start(config(up.url));
    const routed = await get(`${off.url}/__rxgate/metrics`);
    expect(routed.body).toBe('from the upstream');

    const on = await start(config(up.url, 'metrics: { public: true }'));
    await get(`${on.url}/x`);
    const exposed = await get(`${on.url}/__rxgate/metrics`);
    expect(exposed.status).toBe(200);
    expect(exposed.body).toMatch(/^rxgate_requests_total\{route="everything",status="2xx"\} 1$/m);
  });

  it('answers GET /health with the health view: 200 while every service has an instance, 503 when one has none', async () => {
    const up = await upstream('ok');
    const gw = await start(`
admin: { port: 0 }
reload: { watch: false }
services:
  up: { upstreams: ["${up.url}"] }
  down: { upstreams: ["http://127.0.0.1:9"], health: { path: /health, interval: 1h, unhealthyAfter: 1 } }
routes:
  - { path: /up/*, service: up }
  - { path: /down/*, service: down }
`);
    const health = await get(`${gw.admin}/health`);
    expect(health.headers['content-type']).toBe('application/json');
    expect((JSON.parse(health.body) as { services: Record<string, { status: string }> }).services['up']!.status).toBe('ok');
    // The first probe of `down` runs at start; its refusal takes the only instance out. Poll for it.
    let again = health;
    await until(async () => (again = await get(`${gw.admin}/health`)).status === 503, { interval: 25 });
    expect(again.status).toBe(503);
    expect((JSON.parse(again.body) as { services: Record<string, { status: string }> }).services['down']!.status).not.toBe('ok');
  });

  it('answers GET /ready 200 while serving and 503 once draining', async () => {
    const up = await upstream('ok');
    const gw = await start(config(up.url));
    const ready = await get(`${gw.admin}/ready`);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });
    gw.gateway.state = 'draining';
    const draining = await get(`${gw.admin}/ready`);
    expect(draining.status).toBe(503);
    expect(JSON.parse(draining.body)).toEqual({ status: 'draining' });
    // Liveness is not readiness: a draining gateway is alive.
    const live = await get(`${gw.admin}/live`);
    expect(live.status).toBe(200);
    expect(JSON.parse(live.body)).toEqual({ status: 'ok' });
  });

  it('reloads on POST /reload: 200 applied, 422 with the key path when the new config is refused', async () => {
    const one = await upstream('one');
    const two = await upstream('two');
    const gw = await start(config(one.url));
    expect((await get(`${gw.url}/x`)).body).toBe('one');

    writeFileSync(gw.file, config(two.url));
    const applied = await request(`${gw.admin}/reload`, { method: 'POST' });
    expect(applied.statusCode).toBe(200);
    expect(await applied.body.json()).toEqual({ outcome: 'applied' });
    expect((await get(`${gw.url}/x`)).body).toBe('two');

    writeFileSync(gw.file, config(two.url).replace('service: api', 'service: nope'));
    const refused = await request(`${gw.admin}/reload`, { method: 'POST' });
    expect(refused.statusCode).toBe(422);
    const body = await refused.body.json() as { outcome: string; message: string };
    expect(body.outcome).toBe('refused');
    expect(body.message).toContain('routes[0].service');
    expect((await get(`${gw.url}/x`)).body).toBe('two');
  });

  it('answers 405 to a wrong method and 404 off its paths, and none of its paths on the public listener', async () => {
    const up = await upstream('public');
    const gw = await start(config(up.url));
    expect((await get(`${gw.admin}/reload`)).status).toBe(405);
    expect((await request(`${gw.admin}/metrics`, { method: 'POST' })).statusCode).toBe(405);
    expect((await get(`${gw.admin}/nothing-here`)).status).toBe(404);
    expect((await get(`${gw.url}/ready`)).body).toBe('public');
    const head = await request(`${gw.admin}/ready`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(await head.body.text()).toBe('');
  });

  it('refuses to start when the admin port is taken, naming the address', async () => {
    const up = await upstream('ok');
    const first = await start(config(up.url));
    const file = join(dir, 'taken.yaml');
    const yaml = config(up.url);
    writeFileSync(file, yaml);
    const second = serve(parseConfig(yaml, file), defaultPipeline, {
      file, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, adminPort: first.adminPort!,
    });
    await expect(second).rejects.toThrow(`rxgate admin listener could not listen on 127.0.0.1:${first.adminPort}`);
  });

  it('mounts the admin page on GET /', async () => {
    const up = await upstream('ok');
    const gw = await start(config(up.url));
    const page = await get(`${gw.admin}/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
  });
});
