import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBuild } from '../../lib/config/check.ts';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * Review RR1 (session 9) on host routes, `match` fall-through and the
 * headers stage: each case failed before its fix.
 */

const ups: TestUpstream[] = [];
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;
const flaky = new Map<string, number>();

async function named(name: string): Promise<number> {
  const u = await startUpstream((req, res) => {
    req.resume();
    if (req.url!.startsWith('/flaky/')) {
      const n = (flaky.get(req.url!) ?? 0) + 1;
      flaky.set(req.url!, n);
      if (n < 3) return void res.writeHead(503).end();
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name} x-user=${req.headers['x-user'] ?? '-'} x-tag=${req.headers['x-tag'] ?? '-'} cookie=${req.headers['cookie'] ?? '-'}`);
  });
  ups.push(u);
  return u.port;
}

beforeAll(async () => {
  const [api, wild, other, beta] = [await named('api'), await named('wild'), await named('other'), await named('beta')];
  gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["http://127.0.0.1:${api}"] }
  wild: { upstreams: ["http://127.0.0.1:${wild}"] }
  other: { upstreams: ["http://127.0.0.1:${other}"] }
  beta: { upstreams: ["http://127.0.0.1:${beta}"] }
auth: { secret: "0123456789abcdef0123456789abcdef0123", mode: optional, forwardClaims: { sub: x-user } }
routes:
  - { path: /beta, service: beta, hosts: [api.example.com], match: { headers: { x-t: b } } }
  - { path: /claim, service: beta, match: { headers: { x-user: true } } }
  - { path: /claim, service: other, methods: [GET, POST] }
  - path: /flaky/*
    service: other
    pipeline: [retry, headers]
    retry: { attempts: 3, statuses: [503], base: 1ms }
    headers: { request: { add: { x-tag: gw, cookie: "g=1" } } }
  - { path: /*, service: wild, hosts: ["*.example.com"] }
  - { path: /*, service: other }
`);
}, 60_000);

afterAll(async () => {
  await gw?.close();
  for (const u of ups) await u.close();
});

async function get(path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number; text: string; headers: Record<string, unknown> }> {
  const res = await request(gw.url + path, { method: method as 'GET', headers });
  return { status: res.statusCode, text: await res.body.text(), headers: res.headers };
}

describe('a route\'s match and the client\'s copies of claim headers', () => {
  it('tests the match without them: a spoofed x-user neither reaches the match route nor ends in a 404', async () => {
    expect((await get('/claim')).text).toMatch(/^other x-user=-/);
    const spoofed = await get('/claim', { 'x-user': 'admin' });
    expect(spoofed.status).toBe(200);
    expect(spoofed.text).toMatch(/^other x-user=-/);
  });
});

describe('a host whose only route on the path fails its match', () => {
  it('goes on to the wildcard\'s routes, as a path the host does not serve does', async () => {
    expect((await get('/beta', { host: 'api.example.com', 'x-t': 'b' })).text).toMatch(/^beta /);
    expect((await get('/beta', { host: 'api.example.com' })).text).toMatch(/^wild /);
  });
});

describe('a preflight on a host', () => {
  it('announces the methods of that host\'s routes on the path, not another host\'s', async () => {
    const port = ups[0]!.port;
    const own = await startGatewayFromYaml(`
services: { api: { upstreams: ["http://127.0.0.1:${port}"] } }
routes:
  - { path: /c, service: api, hosts: [a.example.com], methods: [GET, OPTIONS], cors: { origins: ["https://p.example"] } }
  - { path: /c, service: api, hosts: [b.example.com], methods: [DELETE, OPTIONS] }
`);
    try {
      const res = await request(own.url + '/c', { method: 'OPTIONS', headers: { host: 'a.example.com', origin: 'https://p.example', 'access-control-request-method': 'GET' } });
      await res.body.dump();
      expect(res.statusCode).toBe(204);
      expect(String(res.headers['access-control-allow-methods']).split(/,\s*/).sort()).toEqual(['GET', 'HEAD']);
    } finally {
      await own.close();
    }
  });
});

describe('headers stage after retry in a pipeline list', () => {
  it('adds to the request once, whatever the number of attempts', async () => {
    const res = await get('/flaky/1', { 'x-tag': 'client', cookie: 'c=1' });
    expect(res.status).toBe(200);
    expect(flaky.get('/flaky/1')).toBe(3);
    expect(res.text).toBe('other x-user=- x-tag=client, gw cookie=c=1; g=1');
  });

  it('refuses one name twice in a rule, names compared without case', async () => {
    let problem = '';
    try {
      await checkBuild(parseConfig(`
services: { s: { upstreams: ["http://127.0.0.1:1"] } }
routes:
  - { path: /a, service: s, headers: { response: { set: { X-Z: one, x-z: two } } } }
`, 'test.yaml', {}), null);
    } catch (err) {
      problem = err instanceof ConfigError ? err.problems.join('\n') : String(err);
    }
    expect(problem).toMatch(/routes\[0\]\.headers\.response\.set: x-z is named twice/);
  });
});
