import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Observable, VirtualTimeScheduler } from 'rxjs';
import { request } from 'undici';
import { z } from 'zod';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { defineStage } from '../../lib/stages/define.ts';
import type { GatewayResponse } from '../../lib/types.ts';
import { requireHeader } from '../../examples/require-header.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A stage that appends `x-tag: <value>` to the response on its way out (the inner stage appends first). */
function tagStage(name: string) {
  return defineStage({
    name,
    options: z.strictObject({ value: z.string().default(name) }),
    build: ({ value }) => (next) => (req) => new Observable<GatewayResponse>((s) => next(req).subscribe({
      next: (res) => s.next({ ...res, headers: [...res.headers, 'x-tag', value] }),
      error: (e) => s.error(e),
      complete: () => s.complete(),
    })),
  });
}
const tagA = tagStage('tagA');
const tagB = tagStage('tagB');
const stages = [requireHeader, tagA, tagB];

async function upstream(handler?: Parameters<typeof startUpstream>[0]): Promise<TestUpstream & { hits: string[] }> {
  const hits: string[] = [];
  const up = await startUpstream((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    req.resume();
    if (handler !== undefined) handler(req, res);
    else res.end('ok');
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { hits });
}

async function gateway(yaml: string, extra: Parameters<typeof startGatewayFromYaml>[3] = {}) {
  const gw = await startGatewayFromYaml(yaml, defaultPipeline, process.env, { stages, ...extra });
  cleanups.push(() => gw.close());
  return gw;
}

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'test.yaml', {}, stages);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('YAML pipelines', () => {
  it('runs a route\'s stages in the order its pipeline lists them', async () => {
    const up = await upstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /ab, service: api, pipeline: [tagA, tagB] }
  - { path: /ba, service: api, pipeline: [tagB, tagA] }
`);
    const ab = await request(`${gw.url}/ab`);
    await ab.body.text();
    const ba = await request(`${gw.url}/ba`);
    await ba.body.text();
    // The outer stage sees the response last, so its tag comes last.
    expect(ab.headers['x-tag']).toEqual(['tagB', 'tagA']);
    expect(ba.headers['x-tag']).toEqual(['tagA', 'tagB']);
  });

  it('gives routes without a list the top-level pipeline, and leaves out stages it does not name', async () => {
    const up = await upstream();
    const gw = await gateway(`
pipeline: [tagA]
services:
  api: { upstreams: ["${up.url}", "http://127.0.0.1:1"] }
routes:
  - { path: /top, service: api }
  - { path: /own, service: api, pipeline: [tagB, retry] }
`);
    const top = await request(`${gw.url}/top`);
    await top.body.text();
    expect(top.headers['x-tag']).toBe('tagA');
    // retry is on by default, but not in the top-level list: no attempts header.
    expect(top.headers['x-gateway-attempts']).toBeUndefined();
    const own = await request(`${gw.url}/own`);
    await own.body.text();
    expect(own.headers['x-tag']).toBe('tagB');
    expect(own.headers['x-gateway-attempts']).toBeDefined();
  });

  it('runs a registered stage that a route configures in the default order (the 15-line example)', async () => {
    const up = await upstream();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /tenant/*, service: api, requireHeader: { name: X-Tenant } }
  - { path: /open/*, service: api }
`);
    const refused = await request(`${gw.url}/tenant/a`);
    expect(refused.statusCode).toBe(400);
    expect(await refused.body.json()).toEqual({ error: { code: 'BAD_REQUEST', message: 'this route needs a x-tenant header' } });
    const admitted = await request(`${gw.url}/tenant/a`, { headers: { 'x-tenant': 'acme' } });
    expect(admitted.statusCode).toBe(200);
    expect(await admitted.body.text()).toBe('ok');
    const open = await request(`${gw.url}/open/a`);
    expect(open.statusCode).toBe(200);
    await open.body.text();
    expect(up.hits).toEqual(['GET /tenant/a', 'GET /open/a']);
  });
});

describe('config errors for stages', () => {
  const base = `
services:
  api: { upstreams: ["http://127.0.0.1:9"] }
routes:
`;
  it('names the key path of a registered stage\'s bad option', () => {
    expect(problems(`${base}  - { path: /a, service: api }\n  - { path: /b, service: api }\n  - { path: /c, service: api, requireHeader: { name: 42 } }\n`))
      .toEqual([expect.stringMatching(/^routes\[2\]\.requireHeader\.name: .*expected string/)]);
    expect(problems(`${base}  - { path: /c, service: api, requireHeader: { name: x, nmae: y } }\n`))
      .toEqual(['routes[0].requireHeader.nmae: unknown key (did you mean name?)']);
  });

  it('refuses an unknown stage in a pipeline list, at the top level and on a route', () => {
    expect(problems(`pipeline: [auth, nope]\n${base}  - { path: /a, service: api, pipeline: [retry, retyr] }\n`)).toEqual([
      expect.stringMatching(/^pipeline\[1\]: unknown stage "nope" \(known: ipFilter, cors, auth, rateLimit, .*requireHeader/),
      expect.stringMatching(/^routes\[0\]\.pipeline\[1\]: unknown stage "retyr"/),
    ]);
  });

  it('refuses a stage the route configures but its list leaves out, and a listed stage that needs options', () => {
    expect(problems(`${base}  - { path: /a, service: api, pipeline: [retry], requireHeader: { name: x } }\n`))
      .toEqual(['routes[0].requireHeader: set, but the pipeline (retry) does not list requireHeader']);
    expect(problems(`${base}  - { path: /a, service: api, pipeline: [requireHeader] }\n`))
      .toEqual(['routes[0].requireHeader: stage requireHeader is in the pipeline but has no options here']);
  });

  it('refuses a stage the gateway does not know as an unknown key', () => {
    expect(() => parseConfig(`${base}  - { path: /a, service: api, requireHeader: { name: x } }\n`, 'test.yaml', {}))
      .toThrow(/routes\[0\]\.requireHeader: unknown key/);
  });

  it('rejects the bad option from the command line with the key path and exit status 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rxgate-stage-'));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, `${base}  - { path: /a, service: api, requireHeader: { name: "" } }\n`);
    const run = spawnSync(process.execPath, ['--import', './bin/loader/register.mjs', 'examples/custom-stage.ts', '-c', file, '--check'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/routes\[0\]\.requireHeader\.name: /);
  });
});

describe('a YAML-built gateway on virtual time', () => {
  it('fires timeouts.perAttempt and the retry backoff on the runtime\'s scheduler', async () => {
    const up = await upstream(() => { /* never answers */ });
    const scheduler = new VirtualTimeScheduler();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"], timeout: 1h }
routes:
  - { path: /*, service: api, timeouts: { perAttempt: 2s }, retry: { attempts: 2, base: 10s, cap: 10s } }
`, { runtime: virtualRuntime(scheduler) });
    const answer = request(`${gw.url}/slow`).then(async (r) => ({ status: r.statusCode, attempts: r.headers['x-gateway-attempts'], body: await r.body.json() }));
    await vi.waitFor(() => expect(up.hits).toHaveLength(1));
    // Nothing fires on its own: the 2 s limit waits for virtual time.
    expect(scheduler.actions.map((a) => a.delay)).toEqual([2000]);
    // Virtual time moves only as far as `maxFrames` allows (actions' `delay` is their due time).
    const until = (frame: number): void => {
      scheduler.maxFrames = frame;
      scheduler.flush();
    };
    until(2000); // attempt 1 times out; retry schedules a backoff of up to 10 s
    await vi.waitFor(() => expect(scheduler.actions).toHaveLength(1));
    const resumeAt = scheduler.actions[0]!.delay;
    expect(resumeAt).toBeGreaterThan(2000);
    expect(resumeAt).toBeLessThanOrEqual(12_000);
    expect(up.hits).toHaveLength(1);
    until(resumeAt); // the backoff ends: attempt 2 starts, its own 2 s limit scheduled
    await vi.waitFor(() => expect(up.hits).toHaveLength(2));
    expect(scheduler.actions.map((a) => a.delay)).toEqual([resumeAt + 2000]);
    until(Infinity); // attempt 2 times out: retry is spent
    const a = await answer;
    expect(a.status).toBe(504);
    expect((a.body as { error: { code: string } }).error.code).toBe('GATEWAY_TIMEOUT');
  });

  it('runs the circuit breaker\'s reset timeout on virtual time', async () => {
    const up = await upstream((req, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    const scheduler = new VirtualTimeScheduler();
    const gw = await gateway(`
services:
  api: { upstreams: ["${up.url}"], retry: false, circuitBreaker: { consecutiveFailures: 1, resetTimeout: 30s, failureStatuses: [503] } }
routes:
  - { path: /*, service: api }
`, { runtime: virtualRuntime(scheduler) });
    const status = async (): Promise<number> => {
      const r = await request(`${gw.url}/x`);
      await r.body.text();
      return r.statusCode;
    };
    expect(await status()).toBe(503); // the upstream's own 503: counted, the circuit opens
    expect(up.hits).toHaveLength(1);
    expect(await status()).toBe(503); // CIRCUIT_OPEN, upstream not asked
    expect(up.hits).toHaveLength(1);
    scheduler.schedule(() => {}, 29_999);
    scheduler.flush();
    expect(await status()).toBe(503);
    expect(up.hits).toHaveLength(1);
    scheduler.schedule(() => {}, 1);
    scheduler.flush(); // 30 s of virtual time: half-open, one probe goes through
    expect(await status()).toBe(503);
    expect(up.hits).toHaveLength(2);
  });
});
