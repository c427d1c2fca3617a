import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/** The resilience keys of the YAML config reach the operators (the code form is tested in resilience-*.test.ts). */
describe('resilience from YAML', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const c of open.splice(0).reverse()) await c.close();
  });

  async function upstream(mode: 'ok' | 'reset' | 'hang', hits: string[], name: string): Promise<TestUpstream> {
    const up = await startUpstream((req, res) => {
      hits.push(name);
      if (mode === 'reset') req.socket.destroy();
      else if (mode === 'ok') res.end(name);
    });
    open.push(up);
    return up;
  }

  async function gateway(yaml: string): Promise<Gateway & { url: string }> {
    const gw = await startGatewayFromYaml(yaml);
    open.push(gw);
    return gw;
  }

  it('skips an instance whose own breaker opened, with circuitBreaker.perInstance', async () => {
    const hits: string[] = [];
    const bad = await upstream('reset', hits, 'bad');
    const good = await upstream('ok', hits, 'good');
    const gw = await gateway(`
services:
  api:
    upstreams: ["${bad.url}", "${good.url}"]
    retry: { attempts: 2, base: 1ms, cap: 2ms }
    circuitBreaker: { perInstance: true, consecutiveFailures: 1, resetTimeout: 1h }
routes:
  - { path: /*, service: api }
`);
    for (let i = 0; i < 6; i++) {
      const res = await request(`${gw.url}/x`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('good');
    }
    // One failure opened bad's breaker; round-robin never sent it anything again.
    expect(hits.filter((h) => h === 'bad')).toHaveLength(1);
  });

  it('answers 503 CIRCUIT_OPEN with retry-after once the service breaker is open, without calling the upstream', async () => {
    const hits: string[] = [];
    const bad = await upstream('reset', hits, 'bad');
    const gw = await gateway(`
services:
  api:
    upstreams: ["${bad.url}"]
    retry: false
    circuitBreaker: { consecutiveFailures: 2, resetTimeout: 1h }
routes:
  - { path: /*, service: api }
`);
    expect((await request(`${gw.url}/x`)).statusCode).toBe(502);
    expect((await request(`${gw.url}/x`)).statusCode).toBe(502);
    const res = await request(`${gw.url}/x`);
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('3600');
    expect(await res.body.json()).toEqual({ error: { code: 'CIRCUIT_OPEN', message: 'circuit breaker is open' } });
    expect(hits).toHaveLength(2);
  });

  it('makes exactly one attempt with retry: false, and as many as configured otherwise', async () => {
    const hits: string[] = [];
    const bad = await upstream('reset', hits, 'bad');
    const gw = await gateway(`
services:
  api: { upstreams: ["${bad.url}"], circuitBreaker: false }
routes:
  - { path: /once/*, service: api, retry: false }
  - { path: /thrice/*, service: api, retry: { attempts: 3, base: 1ms, cap: 2ms, budget: false } }
`);
    expect((await request(`${gw.url}/once/x`)).statusCode).toBe(502);
    expect(hits).toHaveLength(1);
    const res = await request(`${gw.url}/thrice/x`);
    expect(res.statusCode).toBe(502);
    expect(hits).toHaveLength(4);
  });

  it('answers 504 from timeouts.perAttempt and aborts the hanging upstream request', async () => {
    const hits: string[] = [];
    const slow = await upstream('hang', hits, 'slow');
    let closed = 0;
    slow.server.on('request', (req) => req.socket.on('close', () => closed++));
    const gw = await gateway(`
services:
  api: { upstreams: ["${slow.url}"], retry: false, timeouts: { perAttempt: 100ms } }
routes:
  - { path: /*, service: api }
`);
    const res = await request(`${gw.url}/x`);
    expect(res.statusCode).toBe(504);
    expect((await res.body.json() as { error: { code: string } }).error.code).toBe('GATEWAY_TIMEOUT');
    await expect.poll(() => closed).toBe(1);
  });
});
