import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/** The metrics a YAML gateway keeps as plain numbers, as Prometheus reads them. */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function get(url: string): Promise<number> {
  const res = await request(url);
  await res.body.text();
  return res.statusCode;
}

describe('gateway metrics', () => {
  it('counts the cache\'s verdicts, upstream latency by instance, failures and requests in flight', async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.setHeader('cache-control', 'max-age=60');
      res.end('ok');
    });
    cleanups.push(() => up.close());
    // Port 1 refuses: the first attempt there fails, retry goes to the live one.
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["http://127.0.0.1:1", "${up.url}"], balancer: round-robin, timeout: 2s }
routes:
  - { name: cached, path: /cached/*, service: api, cache: { ttl: 60s }, retry: { attempts: 3, base: 1ms } }
`);
    cleanups.push(() => gw.close());
    expect(await get(`${gw.url}/cached/a`)).toBe(200);
    expect(await get(`${gw.url}/cached/a`)).toBe(200);
    expect(await get(`${gw.url}/cached/b`)).toBe(200);

    const text = await gw.metrics.registry.metrics();
    expect(text).toContain('rxgate_cache_requests_total{route="cached",result="miss"} 2\n');
    expect(text).toContain('rxgate_cache_requests_total{route="cached",result="hit"} 1\n');
    expect(text).toContain('rxgate_requests_total{route="cached",status="2xx"} 3\n');
    expect(text).toContain(`rxgate_upstream_duration_seconds_count{service="api",instance="${up.url}"} 2\n`);
    expect(text).toMatch(/^rxgate_upstream_failures_total\{service="api",instance="http:\/\/127\.0\.0\.1:1"\} [1-9]\d*$/m);
    expect(text).toContain(`rxgate_upstream_failures_total{service="api",instance="${up.url}"} 0\n`);
    expect(text).toContain(`rxgate_upstream_in_flight{service="api",instance="${up.url}"} 0\n`);
  });

  it('shows a request held by an upstream as in flight on its instance until it ends', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => { release = resolve; });
    let arrived: () => void = () => {};
    const arrival = new Promise<void>((resolve) => { arrived = resolve; });
    const up = await startUpstream((req, res) => {
      req.resume();
      arrived();
      void held.then(() => res.end('late'));
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml(`
services:
  slow: { upstreams: ["${up.url}"], timeout: 10s }
routes:
  - { name: slow, path: /slow, service: slow }
`);
    cleanups.push(() => gw.close());
    const pending = get(`${gw.url}/slow`);
    await arrival;
    expect(await gw.metrics.registry.metrics()).toContain(`rxgate_upstream_in_flight{service="slow",instance="${up.url}"} 1\n`);
    release();
    expect(await pending).toBe(200);
    const text = await gw.metrics.registry.metrics();
    expect(text).toContain(`rxgate_upstream_in_flight{service="slow",instance="${up.url}"} 0\n`);
    expect(text).toContain('rxgate_requests_total{route="slow",status="2xx"} 1\n');
  });

  it('counts upstream answers per service by status class, each attempt (a retried 503 and its 200), apart from what the client got and from failures before a head', async () => {
    let n = 0;
    const up = await startUpstream((req, res) => {
      req.resume();
      // /api/flaky: 503 the first time, 200 the second.
      if (req.url === '/api/flaky') res.statusCode = n++ === 0 ? 503 : 200;
      else if (req.url === '/api/missing') res.statusCode = 404;
      else if (req.url === '/api/moved') { res.statusCode = 302; res.setHeader('location', '/api/ok'); }
      res.end('x');
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"], timeout: 2s }
  other: { upstreams: ["${up.url}"], timeout: 2s }
routes:
  - { name: api, path: /api/*, service: api, retry: { attempts: 2, base: 1ms, statuses: [503] } }
  - { name: other, path: /other/*, service: other }
`);
    cleanups.push(() => gw.close());
    expect(await get(`${gw.url}/api/ok`)).toBe(200);
    expect(await get(`${gw.url}/api/flaky`)).toBe(200);
    expect(await get(`${gw.url}/api/missing`)).toBe(404);
    expect(await get(`${gw.url}/api/moved`)).toBe(302);
    expect(await get(`${gw.url}/other/x`)).toBe(200);
    const text = await gw.metrics.registry.metrics();
    expect(text).toContain('# TYPE rxgate_upstream_responses_total counter\n');
    expect(text).toContain('rxgate_upstream_responses_total{service="api",code_class="2xx"} 2\n');
    expect(text).toContain('rxgate_upstream_responses_total{service="api",code_class="3xx"} 1\n');
    expect(text).toContain('rxgate_upstream_responses_total{service="api",code_class="4xx"} 1\n');
    // The first attempt's 503 is counted though the client got the retry's 200.
    expect(text).toContain('rxgate_upstream_responses_total{service="api",code_class="5xx"} 1\n');
    expect(text).toContain('rxgate_upstream_responses_total{service="other",code_class="2xx"} 1\n');
    expect(text).not.toContain('rxgate_upstream_responses_total{service="other",code_class="5xx"}');
  });
});
