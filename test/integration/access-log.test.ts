import type { ServerResponse } from 'node:http';
import pino from 'pino';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import type { Gateway } from '../../lib/gateway.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { closed, connect, echo, startWsUpstream, wsUrl } from '../support/ws.ts';
import { until } from '../support/wait.ts';

/**
 * The access log through real gateways built from YAML: one JSON line per
 * request with its route, service, instance, status, bytes, durations,
 * attempts, cache and breaker outcomes and client; secrets never in it; on
 * and off per route.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const SECRET = 'sEcReT-4f1b2c';

interface Captured {
  /** Every line the gateway's logger wrote, raw. */
  raw: string[];
  /** The access lines, parsed. */
  access(): Array<Record<string, unknown>>;
}

/** A gateway from `yaml` whose logger writes into memory. */
async function gateway(yaml: string): Promise<{ url: string; log: Captured; gw: Gateway }> {
  const raw: string[] = [];
  const logger = pino({ name: 'rxgate', level: 'info' }, { write: (line: string) => void raw.push(line) });
  const gw = await startGatewayFromYaml(yaml, defaultPipeline, process.env, { logger });
  cleanups.push(() => gw.close());
  const log: Captured = {
    raw,
    access: () => raw.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'access'),
  };
  return { url: gw.url, log, gw };
}

async function upstream(respond: (res: ServerResponse, n: number, body: string) => void = (res) => res.end('hello')): Promise<TestUpstream & { hits: () => number }> {
  let hits = 0;
  const up = await startUpstream((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => { body += c.toString(); });
    req.on('end', () => respond(res, ++hits, body));
  });
  cleanups.push(() => up.close());
  return Object.assign(up, { hits: () => hits });
}

/**
 * A line is written on a `setImmediate` queued when its exchange ended,
 * before the client had the answer: one more turn after reading the answer
 * has let every such write happen. What a "nothing was logged" check waits for.
 */
const written = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('access log', () => {
  it('writes one line per request with what the request did', async () => {
    const up = await upstream((res, _n, body) => res.end(`got ${body}`));
    const { url, log } = await gateway(`
services:
  users: { upstreams: ["${up.url}"] }
routes:
  - { path: /users/*, service: users, name: users }
`);
    const res = await request(`${url}/users/7`, { method: 'POST', body: 'twelve bytes', headers: { 'x-request-id': 'req-1' } });
    const text = await res.body.text();
    expect(text).toBe('got twelve bytes');
    await until(() => log.access().length === 1);
    const line = log.access()[0]!;
    expect(line).toMatchObject({
      reqId: 'req-1', route: 'users', service: 'users', instance: up.url, method: 'POST', path: '/users/7',
      status: 200, bytesIn: 12, bytesOut: 16, attempts: 1, breaker: 'pass', client: '127.0.0.1', level: 30,
    });
    expect(typeof line.durationMs).toBe('number');
    expect(typeof line.upstreamMs).toBe('number');
    expect(line.upstreamMs as number).toBeLessThanOrEqual(line.durationMs as number);
    expect(line.traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(line).not.toHaveProperty('query');
    expect(line).not.toHaveProperty('end');
  });

  it('never writes Authorization, cookies, redacted headers or redacted query parameters', async () => {
    const up = await upstream();
    const { url, log } = await gateway(`
log:
  headers: [user-agent, authorization, cookie, x-api-key]
  redact: [x-api-key, token]
  query: true
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /api/*, service: api }
`);
    const res = await request(`${url}/api/x?token=${SECRET}&page=2`, {
      headers: { authorization: `Bearer ${SECRET}`, cookie: `session=${SECRET}`, 'x-api-key': SECRET, 'user-agent': 'tester/1' },
    });
    await res.body.text();
    await until(() => log.access().length === 1);
    const line = log.access()[0]!;
    expect(line.query).toBe('token=[redacted]&page=2');
    expect(line.headers).toEqual({ 'user-agent': 'tester/1', authorization: '[redacted]', cookie: '[redacted]', 'x-api-key': '[redacted]' });
    expect(log.raw.join('')).not.toContain(SECRET);
  });

  it('leaves out a route that sets log.access: false, and logs one that sets true when the top level is off', async () => {
    const up = await upstream();
    const { url, log } = await gateway(`
log: { access: false }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /quiet, service: api }
  - { path: /loud, service: api, log: { access: true } }
`);
    await (await request(`${url}/quiet`)).body.text();
    await (await request(`${url}/loud`)).body.text();
    await until(() => log.access().length === 1);
    await (await request(`${url}/quiet`)).body.text();
    await written();
    expect(log.access().map((l) => l.route)).toEqual(['/loud']);
  });

  it('follows a reload: the log keys of the new config apply from the next request', async () => {
    const up = await upstream();
    const yaml = (access: boolean): string => `
log: { access: ${access} }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /a, service: api }
`;
    const { url, log, gw } = await gateway(yaml(true));
    const get = async (id: string): Promise<void> => void await (await request(`${url}/a`, { headers: { 'x-request-id': id } })).body.text();
    await get('r1');
    await until(() => log.access().length === 1);
    await gw.reload(parseConfig(yaml(false), 'reloaded.yaml', {}));
    await get('r2');
    await gw.reload(parseConfig(yaml(true), 'reloaded.yaml', {}));
    await get('r3');
    await until(() => log.access().some((l) => l.reqId === 'r3'));
    expect(log.access().map((l) => l.reqId)).toEqual(['r1', 'r3']);
    expect(up.hits()).toBe(3);
  });

  it('writes nothing per request when log.access is false everywhere', async () => {
    const up = await upstream();
    const { url, log } = await gateway(`
log: { access: false }
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /a, service: api, log: { access: false } }
`);
    await (await request(`${url}/a`)).body.text();
    expect(up.hits()).toBe(1);
    await written();
    expect(log.access()).toEqual([]);
  });

  it('records the cache outcome: a miss goes upstream, a hit does not', async () => {
    const up = await upstream((res, n) => {
      res.setHeader('cache-control', 'max-age=60');
      res.end(`body ${n}`);
    });
    const { url, log } = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /c, service: api, cache: { ttl: 60s } }
`);
    await (await request(`${url}/c`)).body.text();
    await (await request(`${url}/c`)).body.text();
    await until(() => log.access().length === 2);
    const [miss, hit] = log.access();
    expect(miss).toMatchObject({ cache: 'MISS', attempts: 1, status: 200, bytesOut: 6 });
    expect(hit).toMatchObject({ cache: 'HIT', attempts: 0, status: 200, bytesOut: 6 });
    expect(hit).not.toHaveProperty('upstreamMs');
    expect(hit).not.toHaveProperty('instance');
  });

  it('counts retried attempts and names the instance that answered', async () => {
    const bad = await upstream((res) => { res.statusCode = 503; res.end('down'); });
    const good = await upstream((res) => res.end('up'));
    const { url, log } = await gateway(`
services:
  api:
    upstreams: ["${bad.url}", "${good.url}"]
    balancer: round-robin
    retry: { attempts: 3, statuses: [503], base: 1ms, cap: 1ms }
routes:
  - { path: /r, service: api }
`);
    // Round robin: whichever instance comes first, one of two requests starts on the failing one.
    for (let i = 0; i < 2; i++) expect((await request(`${url}/r`)).statusCode).toBe(200);
    await until(() => log.access().length === 2);
    const lines = log.access();
    expect(lines.map((l) => l.attempts).sort()).toEqual([1, 2]);
    for (const l of lines) expect(l).toMatchObject({ instance: good.url, status: 200 });
  });

  it('logs a request the client gave up on as aborted', async () => {
    let arrived = false;
    const up = await upstream(() => { arrived = true; /* never answers */ });
    const { url, log } = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /slow, service: api }
`);
    const controller = new AbortController();
    const pending = request(`${url}/slow`, { signal: controller.signal }).catch((err: unknown) => err);
    await until(() => arrived);
    controller.abort();
    await pending;
    await until(() => log.access().length === 1);
    expect(log.access()[0]).toMatchObject({ route: '/slow', status: 499, end: 'aborted', attempts: 1 });
  });

  it('logs a response the upstream cut short as broken', async () => {
    const up = await upstream((res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      setImmediate(() => res.socket?.destroy());
    });
    const { url, log } = await gateway(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /cut, service: api }
`);
    const res = await request(`${url}/cut`);
    await expect(res.body.text()).rejects.toThrow();
    await until(() => log.access().length === 1);
    expect(log.access()[0]).toMatchObject({ route: '/cut', status: 200, end: 'broken', bytesOut: 7, error: 'BAD_GATEWAY' });
  });

  it('logs a WebSocket upgrade once, with status 101, when the upstream accepts it', async () => {
    const up = await startWsUpstream(echo);
    cleanups.push(() => up.close());
    const { url, log } = await gateway(`
services:
  chat: { upstreams: ["${up.url}"] }
routes:
  - { path: /chat, service: chat, websocket: true }
`);
    const ws = await connect(`${wsUrl(url)}/chat`);
    await until(() => log.access().length === 1);
    const done = closed(ws);
    ws.close();
    await done;
    expect(log.access()).toHaveLength(1);
    expect(log.access()[0]).toMatchObject({ route: '/chat', status: 101, method: 'GET', attempts: 0 });
  });

  it('logs an error answered by the gateway with its status and body size (none for HEAD)', async () => {
    const { url, log } = await gateway(`
services:
  api: { upstreams: ["http://127.0.0.1:9"] }
routes:
  - { path: /only, service: api }
`);
    const res = await request(`${url}/nothing-here`);
    const body = await res.body.text();
    expect(res.statusCode).toBe(404);
    await until(() => log.access().length === 1);
    expect(log.access()[0]).toMatchObject({ status: 404, bytesOut: Buffer.byteLength(body), attempts: 0 });
    expect(log.access()[0]).not.toHaveProperty('route');
    // The same error answered to HEAD is the head alone: no body bytes logged.
    const head = await request(`${url}/nothing-here`, { method: 'HEAD' });
    expect(await head.body.text()).toBe('');
    expect(head.statusCode).toBe(404);
    await until(() => log.access().length === 2);
    expect(log.access()[1]).toMatchObject({ method: 'HEAD', status: 404, bytesOut: 0 });
  });
  it('names the code of an error the gateway answered, and none on the upstream\'s own 504 (Envoy\'s response flags)', async () => {
    const up = await upstream((res) => { res.statusCode = 504; res.end('upstream says 504'); });
    const slow = await upstream(() => { /* never answers: the gateway's own 504 */ });
    const { url, log } = await gateway(`
services:
  up: { upstreams: ["${up.url}"] }
  slow: { upstreams: ["${slow.url}"] }
routes:
  - { path: /theirs, service: up }
  - { path: /ours, service: slow, timeouts: { total: 100ms } }
  - { path: /limited, service: up, rateLimit: { limit: 1, window: 1h } }
`);
    const theirs = await request(`${url}/theirs`);
    await theirs.body.text();
    const ours = await request(`${url}/ours`);
    expect((await ours.body.json() as { error: { code: string } }).error.code).toBe('GATEWAY_TIMEOUT');
    for (let i = 0; i < 2; i++) await (await request(`${url}/limited`)).body.text();
    await until(() => log.access().length === 4);
    const byPath = (path: string) => log.access().filter((l) => l.path === path);
    expect(theirs.statusCode).toBe(504);
    expect(byPath('/theirs')[0]).toMatchObject({ status: 504 });
    expect(byPath('/theirs')[0]).not.toHaveProperty('error');
    expect(byPath('/ours')[0]).toMatchObject({ status: 504, error: 'GATEWAY_TIMEOUT' });
    expect(byPath('/limited').map((l) => [l.status, l.error])).toEqual([[504, undefined], [429, 'RATE_LIMITED']]);
  });
});
