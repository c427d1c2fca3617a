import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * Routes by host name (`hosts`), through the CLI on YAML: the exact name's
 * routes, then the longest wildcard's, then the routes without hosts, each
 * only if it serves the path (lib/router/hosts.ts).
 */

let runs: RxgateRuns;
const upstreams: Server[] = [];
let gw = '';

async function upstream(name: string): Promise<number> {
  const server = createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name} ${req.url} ${req.headers.host?.startsWith('127.0.0.1:') ? 'upstream-host' : req.headers.host}`);
  });
  upstreams.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  const [api, wild, other] = [await upstream('api'), await upstream('wild'), await upstream('other')];
  runs = rxgateRuns();
  const gateway = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  api: { upstreams: ["http://127.0.0.1:${api}"] }
  wild: { upstreams: ["http://127.0.0.1:${wild}"] }
  other: { upstreams: ["http://127.0.0.1:${other}"] }
routes:
  - { path: /v1/*, service: api, hosts: [api.example.com], rewrite: { stripPrefix: /v1 } }
  - { path: /admin, service: api, hosts: [api.example.com], methods: [GET], preserveHost: true }
  - { path: /*, service: wild, hosts: ["*.example.com"] }
  - { path: /*, service: other }
`)], { RXGATE_LOG_LEVEL: 'info' });
  gw = `http://127.0.0.1:${Number((await gateway.logged('rxgate listening'))['port'])}`;
}, 60_000);

afterAll(async () => {
  runs?.remove();
  for (const s of upstreams) await new Promise((resolve) => s.close(resolve));
});

async function who(host: string, path: string, method: 'GET' | 'POST' = 'GET'): Promise<string> {
  const res = await request(gw + path, { method, headers: { host } });
  const text = await res.body.text();
  return res.statusCode === 200 ? text : `${res.statusCode} ${text}`.slice(0, 60);
}

describe('routes chosen by host name', () => {
  it('sends each host to its routes, with the route\'s rewrite and Host rules', async () => {
    expect(await who('api.example.com', '/v1/users?x=1')).toBe('api /users?x=1 upstream-host');
    expect(await who('API.Example.com:8443', '/v1/users')).toBe('api /users upstream-host');
    expect(await who('api.example.com', '/admin')).toBe('api /admin api.example.com');
    expect(await who('shop.example.com', '/v1/users')).toBe('wild /v1/users upstream-host');
    expect(await who('example.com', '/v1/users')).toBe('other /v1/users upstream-host');
    expect(await who('other.test', '/admin')).toBe('other /admin upstream-host');
  });

  it('goes on to the wildcard\'s routes for a path the exact host does not serve', async () => {
    expect(await who('api.example.com', '/elsewhere')).toBe('wild /elsewhere upstream-host');
  });

  it('answers 405 with Allow for a method the host\'s route does not allow', async () => {
    const res = await request(gw + '/admin', { method: 'POST', headers: { host: 'api.example.com' }, body: 'x' });
    expect(res.statusCode).toBe(405);
    expect(res.headers['allow']).toBe('GET, HEAD');
    expect(await res.body.json()).toMatchObject({ error: { code: 'METHOD_NOT_ALLOWED' } });
  });
});
