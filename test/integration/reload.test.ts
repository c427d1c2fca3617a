import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool, request } from 'undici';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { serve, type Served } from '../../lib/lifecycle/serve.ts';
import type { GatewayEventMap } from '../../lib/observe/events.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { Resources } from '../../lib/resources/registry.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { errorBody, get } from '../support/answer.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * Hot reload: the route table swapped whole while requests keep coming;
 * unchanged services keep their breakers and the limiter its buckets; a
 * changed route takes effect; a request in flight finishes on the old
 * routes (and the old pool); a bad config is refused with its key path.
 */

const dir = mkdtempSync(join(tmpdir(), 'rxgate-reload-'));
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function upstream(handler: Parameters<typeof startUpstream>[0]): Promise<TestUpstream & { hits: () => number }> {
  let hits = 0;
  const up = await startUpstream((req, res) => {
    hits++;
    handler(req, res);
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { hits: () => hits });
}

const answering = (text: string): Promise<TestUpstream & { hits: () => number }> => upstream((req, res) => {
  req.resume();
  res.end(text);
});

interface Upstreams { stable: string; flaky: string; moving: string }

/** The config of generation `gen`: only the `moving` service's upstream (and a comment) differ between generations. */
function config(u: Upstreams, gen: number, reload = 'reload: { watch: true, debounce: 20ms }'): string {
  return `# generation ${gen}
admin: { host: 127.0.0.1, port: 9901 }
${reload}
services:
  stable: { upstreams: ["${u.stable}"] }
  flaky: { upstreams: ["${u.flaky}"], circuitBreaker: { consecutiveFailures: 2, resetTimeout: 1h, failureStatuses: [500] } }
  moving: { upstreams: ["${u.moving}"] }
routes:
  - { name: stable, path: /stable/*, service: stable }
  - { name: limited, path: /limited/*, service: stable, rateLimit: { limit: 3, window: 1h, burst: 3, key: route } }
  - { name: flaky, path: /flaky/*, service: flaky, retry: false }
  - { name: moving, path: /moving/*, service: moving }
`;
}

/** A registry that notes when a reload's leftovers are closed. */
class WatchedResources extends Resources {
  retired = 0;
  override retire(): () => Promise<void> {
    const close = super.retire();
    return async () => {
      this.retired++;
      await close();
    };
  }
}

async function start(file: string, yaml: string, resources: Resources = new Resources()): Promise<Served & { url: string; admin: string }> {
  writeFileSync(file, yaml);
  const served = await serve(parseConfig(yaml, file), defaultPipeline, {
    file, logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, adminPort: 0, resources,
  });
  cleanups.push(() => served.close());
  return Object.assign(served, { url: `http://127.0.0.1:${served.port}`, admin: `http://127.0.0.1:${served.adminPort}` });
}

type ReloadEvent = GatewayEventMap['reload'];

/** The next `reload` event the gateway publishes. */
function nextReload(served: Served): Promise<ReloadEvent> {
  return new Promise((resolve) => {
    const off = served.gateway.events.on('reload', (e) => {
      off();
      resolve(e);
    });
  });
}

describe('hot reload', () => {
  it('serves every request with 200 across 20 reloads (10 from the file watch, 10 from POST /reload), keeping breaker and limiter state', async () => {
    const stable = await answering('stable');
    const flaky = await upstream((req, res) => {
      req.resume();
      res.statusCode = 500;
      res.end('broken');
    });
    const movers = [await answering('moving-0'), await answering('moving-1')];
    const urls = (gen: number): Upstreams => ({ stable: stable.url, flaky: flaky.url, moving: movers[gen % 2]!.url });
    const file = join(dir, 'load.yaml');
    const gw = await start(file, config(urls(0), 0));

    // State to carry over: the limiter's bucket spent, the flaky service's breaker open.
    for (let i = 0; i < 3; i++) expect((await get(`${gw.url}/limited/x`)).status).toBe(200);
    expect((await get(`${gw.url}/limited/x`)).status).toBe(429);
    expect((await get(`${gw.url}/flaky/x`)).status).toBe(500);
    expect((await get(`${gw.url}/flaky/x`)).status).toBe(500);
    const open = await get(`${gw.url}/flaky/x`);
    expect(open.status).toBe(503);
    expect(errorBody(open).code).toBe('CIRCUIT_OPEN');
    expect(flaky.hits()).toBe(2);

    // Load: four loops of requests on keep-alive connections until the reloads are done.
    const pool = new Pool(gw.url, { connections: 4 });
    cleanups.push(() => pool.close());
    const statuses = new Map<number, number>();
    let loading = true;
    const loop = async (path: string): Promise<void> => {
      while (loading) {
        const res = await pool.request({ path, method: 'GET' });
        await res.body.text();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      }
    };
    const loops = [loop('/stable/a'), loop('/moving/b'), loop('/stable/c'), loop('/moving/d')];

    const events: ReloadEvent[] = [];
    for (let gen = 1; gen <= 20; gen++) {
      const reloaded = nextReload(gw);
      if (gen <= 10) {
        // The 10th rewrite turns the watch off, so the next ten come from POST /reload alone.
        writeFileSync(file, config(urls(gen), gen, gen < 10 ? undefined : 'reload: { watch: false }'));
      } else {
        writeFileSync(file, config(urls(gen), gen, 'reload: { watch: false }'));
        const res = await request(`${gw.admin}/reload`, { method: 'POST' });
        expect(res.statusCode).toBe(200);
        await res.body.text();
      }
      events.push(await reloaded);
      // The changed route took effect.
      expect((await get(`${gw.url}/moving/x`)).body).toBe(`moving-${gen % 2}`);
    }
    loading = false;
    await Promise.all(loops);

    expect(events.map((e) => `${e.trigger}:${e.outcome}`)).toEqual([
      ...Array(10).fill('watch:applied'), ...Array(10).fill('admin:applied'),
    ]);
    expect([...statuses.keys()]).toEqual([200]);
    expect(statuses.get(200)).toBeGreaterThan(20);
    // Both movers answered under load, each in its turn.
    expect(movers[0]!.hits()).toBeGreaterThan(1);
    expect(movers[1]!.hits()).toBeGreaterThan(1);

    // The limiter's bucket and the breaker carried over all twenty rebuilds.
    expect((await get(`${gw.url}/limited/x`)).status).toBe(429);
    const stillOpen = await get(`${gw.url}/flaky/x`);
    expect(stillOpen.status).toBe(503);
    expect(errorBody(stillOpen).code).toBe('CIRCUIT_OPEN');
    expect(flaky.hits()).toBe(2);

    // Counted, by trigger.
    const metrics = (await get(`${gw.admin}/metrics`)).body.split('\n');
    const reloads = (trigger: string): string | undefined => metrics.find((l) => l.startsWith('rxgate_reloads_total{') && l.includes('outcome="applied"') && l.includes(`trigger="${trigger}"`));
    expect(reloads('watch')).toMatch(/ 10$/);
    expect(reloads('admin')).toMatch(/ 10$/);

    // The health view shows the moving service's current instance only.
    const health = JSON.parse((await get(`${gw.admin}/health`)).body) as { services: Record<string, { instances: Array<{ url: string }> }> };
    expect(health.services['moving']!.instances.map((i) => i.url)).toEqual([movers[0]!.url]);
  });

  it('lets a request in flight finish on the old route and pool while the new one serves', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => { release = resolve; });
    let arrived: () => void = () => {};
    const arrival = new Promise<void>((resolve) => { arrived = resolve; });
    const old = await upstream((req, res) => {
      req.resume();
      arrived();
      void held.then(() => res.end('old, finished'));
    });
    const next = await answering('new');
    const stable = await answering('stable');
    const file = join(dir, 'inflight.yaml');
    const resources = new WatchedResources();
    const gw = await start(file, config({ stable: stable.url, flaky: stable.url, moving: old.url }, 0, 'reload: { watch: false }'), resources);

    const oldKey = `service:moving:${JSON.stringify({ upstreams: [old.url] })}`;
    expect(resources.has(oldKey)).toBe(true);
    const slow = request(`${gw.url}/moving/slow`);
    await arrival;
    writeFileSync(file, config({ stable: stable.url, flaky: stable.url, moving: next.url }, 1, 'reload: { watch: false }'));
    expect(await gw.reload('api')).toEqual({ outcome: 'applied' });
    expect((await get(`${gw.url}/moving/x`)).body).toBe('new');
    // The old pool is closed only once the request on it is done.
    expect(resources.retired).toBe(0);

    release();
    const res = await slow;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('old, finished');
    await until(() => resources.retired > 0);
    expect(resources.retired).toBe(1);
    expect(resources.has(oldKey)).toBe(false);
  });

  it('refuses a config that does not validate, naming the key path, and keeps serving the old one', async () => {
    const up = await answering('still the old one');
    const file = join(dir, 'bad.yaml');
    const good = config({ stable: up.url, flaky: up.url, moving: up.url }, 0);
    const gw = await start(file, good);

    const refused = nextReload(gw);
    writeFileSync(file, good.replace('name: moving, path: /moving/*, service: moving', 'name: moving, path: /moving/*, service: moving, retry: { attempts: "three" }'));
    const event = await refused;
    expect(event.outcome).toBe('refused');
    expect(event.trigger).toBe('watch');
    expect(event.message).toContain('routes[3].retry.attempts');
    expect((await get(`${gw.url}/moving/x`)).body).toBe('still the old one');

    // SIGHUP's path (trigger 'signal') refuses it the same way, and a fixed file applies.
    expect((await gw.reload('signal')).outcome).toBe('refused');
    const applied = nextReload(gw);
    writeFileSync(file, good.replace('# generation 0', '# generation 1'));
    expect(await applied).toEqual({ outcome: 'applied', trigger: 'watch' });
  });

  it('applies a reloaded log.level before the routes are rebuilt: the access log follows it, and a refused reload keeps the old level', async () => {
    const up = await answering('ok');
    const file = join(dir, 'level.yaml');
    const yaml = (level: string, extra = ''): string => `
log: { level: ${level} }
reload: { watch: false }
services:
  api: { upstreams: ["${up.url}"] ${extra} }
routes:
  - { path: /a, service: api }
`;
    const lines: string[] = [];
    const logger = pino({ name: 'rxgate', level: 'warn' }, { write: (line: string) => void lines.push(line) });
    writeFileSync(file, yaml('warn'));
    const served = await serve(parseConfig(yaml('warn'), file), defaultPipeline, {
      file, logger, metrics: new GatewayMetrics({ defaultMetrics: false }), host: '127.0.0.1', port: 0, resources: new Resources(),
    });
    cleanups.push(() => served.close());
    const url = `http://127.0.0.1:${served.port}/a`;
    const access = (): string[] => lines.filter((l) => l.includes('"msg":"access"'));
    // A line is written on a turn after its answer: one more turn lets it happen.
    const fetchA = async (): Promise<void> => {
      await (await request(url)).body.text();
      await new Promise((r) => setImmediate(r));
    };
    await fetchA();
    expect(access()).toHaveLength(0);
    writeFileSync(file, yaml('info'));
    expect(await served.reload('admin')).toEqual({ outcome: 'applied' });
    expect(logger.level).toBe('info');
    await fetchA();
    expect(access()).toHaveLength(1);
    // Refused (a stage refuses its options): the level stays what it was.
    writeFileSync(file, yaml('warn', ', timeout: -1s'));
    expect((await served.reload('admin')).outcome).toBe('refused');
    expect(logger.level).toBe('info');
    writeFileSync(file, yaml('warn'));
    expect(await served.reload('admin')).toEqual({ outcome: 'applied' });
    await fetchA();
    expect(access()).toHaveLength(1);
  });
});
