import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/index.ts';
import { CLI, rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * Audit U (notes/s10/U-findings.md): a new user's first day, from the
 * README and the pages it links only. The CLI on YAML files as the docs
 * show them, real upstreams on loopback: an nginx user in front of two
 * services, a Kong user securing an API with a stage of their own, and the
 * config mistakes such users make, judged by whether the message names the
 * key and says what it takes.
 */

let runs: RxgateRuns;
let upstream: Server;
let up = '';
const children: ChildProcess[] = [];

beforeAll(async () => {
  // One echo server stands in for both services: it answers JSON saying what it got.
  upstream = createServer((req, res) => {
    let size = 0;
    req.on('data', (c: Buffer) => { size += c.length; });
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url: req.url, headers: req.headers, size, port: req.socket.remotePort, pad: 'x'.repeat(2000) }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  runs = rxgateRuns();
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  runs?.remove();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

async function listening(p: RxgateProcess): Promise<{ gw: string; admin: string }> {
  const gw = await p.logged('rxgate listening');
  const admin = await p.logged('rxgate admin listening').catch(() => undefined);
  return { gw: `http://127.0.0.1:${gw['port'] as number}`, admin: admin === undefined ? '' : `http://127.0.0.1:${admin['port'] as number}` };
}

async function get(url: string, headers: Record<string, string> = {}, method = 'GET', body?: Buffer): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const res = await request(url, { method: method as 'GET', headers, ...(body === undefined ? {} : { body }) });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

const echo = (b: Buffer): { url: string; headers: Record<string, string>; size: number; port: number } => JSON.parse(b.toString()) as never;

// The journeys run side by side, each on gateways of its own (the echo upstream is shared: it keeps no state).
describe.concurrent('an nginx user in front of two services', () => {
  const nginxYaml = (extra = ''): string => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  users:
    upstreams: ["\${USERS_URL}"]
    keepAlive: 60s
    maxBodySize: 10485760
  shop:
    upstreams: ["\${SHOP_URL}"]
routes:
  - path: /api/users/*
    service: users
    rewrite: { stripPrefix: /api }
    compression: true
  - path: /*
    hosts: [shop.example.com]
    service: shop
${extra}`;

  it('routes by path and host, strips the prefix, keeps upstream connections, sets X-Forwarded-*, gzips, refuses 10 MB, logs JSON, reloads by SIGHUP and POST /reload without failing a request, drains on SIGTERM', async () => {
    const file = runs.file(nginxYaml());
    const env = { USERS_URL: up, SHOP_URL: up };
    const check = runs.start(['-c', file, '--check'], env);
    const p = runs.start(['-c', file], env);
    expect(await check.exited).toBe(0);
    expect(check.stdout()).toMatch(/OK \(2 services, 2 routes\)/);
    const { gw, admin } = await listening(p);

    const a = await get(`${gw}/api/users/42`);
    expect(a.status).toBe(200);
    const seen = echo(a.body);
    expect(seen.url).toBe('/users/42');
    expect(seen.headers).toMatchObject({ 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': gw.slice(7) });
    // upstream keep-alive: the next request reuses the connection
    expect(echo((await get(`${gw}/api/users/43`)).body).port).toBe(seen.port);

    const shop = await get(`${gw}/cart`, { host: 'shop.example.com' });
    expect(shop.status).toBe(200);
    expect(echo(shop.body)).toMatchObject({ url: '/cart', headers: { 'x-forwarded-host': 'shop.example.com' } });
    expect((await get(`${gw}/cart`, { host: 'other.example.com' })).status).toBe(404);

    const gz = await get(`${gw}/api/users/1`, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(echo(gunzipSync(gz.body)).url).toBe('/users/1');

    expect((await get(`${gw}/api/users/up`, {}, 'POST', Buffer.alloc(10 * 1024 * 1024 + 1))).status).toBe(413);
    const nine = await get(`${gw}/api/users/up`, {}, 'POST', Buffer.alloc(9 * 1024 * 1024));
    expect([nine.status, echo(nine.body).size]).toEqual([200, 9 * 1024 * 1024]);

    const line = await p.logged('access', 1);
    expect(line).toMatchObject({ method: 'GET', status: 200, route: '/api/users/*', service: 'users' });
    expect((await get(`${admin}/health`)).status).toBe(200);
    expect((await get(`${admin}/ready`)).status).toBe(200);

    // Reloads under keep-alive load: none fails, the new route serves after each.
    const agent = new Agent({ connections: 4 });
    let stop = false;
    const statuses: number[] = [];
    const load = Promise.all([0, 1, 2, 3].map(async () => {
      while (!stop) {
        const r = await request(`${gw}/api/users/load`, { dispatcher: agent }).catch(() => undefined);
        statuses.push(r?.statusCode ?? 0);
        await r?.body.dump();
      }
    }));
    writeFileSync(file, nginxYaml('  - { path: /api/orders/*, service: shop }\n'));
    p.proc.kill('SIGHUP');
    await p.logged('config reloaded');
    expect(echo((await get(`${gw}/api/orders/7`)).body).url).toBe('/api/orders/7');
    writeFileSync(file, nginxYaml('  - { path: /api/orders/*, service: shop, rewrite: { stripPrefix: /api } }\n'));
    expect((await get(`${admin}/reload`, {}, 'POST')).status).toBe(200);
    expect(echo((await get(`${gw}/api/orders/7`)).body).url).toBe('/orders/7');
    writeFileSync(file, nginxYaml('  - { path: /api/orders/*, service: shop, rewrite: { stripprefix: /api } }\n'));
    const refused = await get(`${admin}/reload`, {}, 'POST');
    expect([refused.status, refused.body.toString()]).toEqual([422, expect.stringContaining('routes[2].rewrite.stripprefix: unknown key')]);
    stop = true;
    await load;
    await agent.close();
    expect(statuses.length).toBeGreaterThan(4);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);

    p.proc.kill('SIGTERM');
    expect(await p.exited).toBe(0);
  }, 30_000);

  it('--check in CI refuses a config with a mistake, exit 2, naming the key path and what it takes', async () => {
    const bad = runs.file(`services:
  users: { upstreams: ["127.0.0.1:3001"], maxBodySize: 10mb }
routes:
  - { path: /api/*, service: user, rateLimit: { limit: 100, per: 1m } }
`);
    const p = runs.start(['-c', bad, '--check']);
    let stderr = '';
    p.proc.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    expect(await p.exited).toBe(2);
    expect(stderr).toContain('services.users.upstreams[0]: expected an http:// or https:// URL');
    expect(stderr).toContain('services.users.maxBodySize: expected a number or false, got a string');
    expect(stderr).toContain('routes[0].rateLimit.window: required, not set (expected a number or a string)');
    expect(stderr).toContain('routes[0].rateLimit.per: unknown key');
  }, 20_000);
});

describe.concurrent('a Kong user securing an API', () => {
  it('verifies JWTs from a JWKS URL, limits per consumer by a claim, answers CORS, filters IPs, and maps a stage of their own and its typed errors to the JSON error shape', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    const idp = createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk] })); });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    const token = (sub: string): Promise<string> => new SignJWT({ sub }).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).setIssuedAt().setExpirationTime('5m').sign(privateKey);

    // examples/require-header.ts style, with errors of the user's own.
    const mod = join(runs.dir, 'my-gateway.mjs');
    const url = (spec: string): string => JSON.stringify(import.meta.resolve(spec));
    writeFileSync(mod, `import { throwError } from ${url('rxjs')};
import { z } from ${url('zod')};
import { defineStage, ForbiddenError, GatewayError, runCli } from ${JSON.stringify(CLI.index)};
class TenantSuspendedError extends ForbiddenError {}
class PaymentRequiredError extends GatewayError { status = 402; code = 'PAYMENT_REQUIRED'; }
export const tenantGate = defineStage({
  name: 'tenantGate',
  options: z.strictObject({ header: z.string().toLowerCase() }),
  build: ({ header }) => (next) => (req) => {
    const t = req.headers[header];
    if (t === 'suspended') return throwError(() => new TenantSuspendedError('tenant suspended'));
    if (t === 'unpaid') return throwError(() => new PaymentRequiredError('pay first', { headers: { 'x-billing': 'overdue' } }));
    if (t === 'crash') return throwError(() => new Error('a secret detail'));
    return next(req);
  },
});
export const stages = [tenantGate];
await runCli(process.argv.slice(2), { stages, module: import.meta.url });
`);
    const file = runs.file(`listen: { host: 127.0.0.1, port: 0 }
auth: { jwksUrl: "http://127.0.0.1:${(idp.address() as AddressInfo).port}/.well-known/jwks.json" }
services:
  api: { upstreams: ["${up}"] }
routes:
  - path: /api/*
    service: api
    methods: [GET, POST, OPTIONS]
    rewrite: { stripPrefix: /api }
    cors: { origins: ["https://app.example.com"], credentials: true }
    auth: { mode: required, forwardClaims: { sub: x-user-id } }
    rateLimit: { limit: 2, window: 1m, key: { claim: sub } }
    tenantGate: { header: X-Tenant }
  - { path: /office/*, service: api, ipFilter: { allow: [10.0.0.0/8] } }
  - { path: /local/*, service: api, ipFilter: { allow: [127.0.0.1/32] } }
`);
    const proc = spawn(process.execPath, [...CLI.node, mod, '-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(proc);
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      proc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /"port":(\d+),"routes":3,"msg":"rxgate listening"/.exec(out);
        if (m !== null) resolve(Number(m[1]));
      });
      proc.on('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const gw = `http://127.0.0.1:${port}`;
    const origin = 'https://app.example.com';
    try {
      const pre = await get(`${gw}/api/orders`, { origin, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' }, 'OPTIONS');
      expect([pre.status, pre.headers['access-control-allow-origin'], pre.headers['access-control-allow-credentials']]).toEqual([204, origin, 'true']);
      expect((await get(`${gw}/api/orders`, { origin: 'https://evil.example', 'access-control-request-method': 'GET' }, 'OPTIONS')).status).toBe(403);

      const none = await get(`${gw}/api/orders`, { origin });
      expect([none.status, none.headers['access-control-allow-origin']]).toEqual([401, origin]);
      expect(JSON.parse(none.body.toString())).toMatchObject({ error: { code: 'UNAUTHORIZED' } });

      const alice = { authorization: `Bearer ${await token('alice')}`, origin };
      const first = await get(`${gw}/api/orders`, alice);
      expect([first.status, first.headers['access-control-allow-origin']]).toEqual([200, origin]);
      expect(echo(first.body).headers['x-user-id']).toBe('alice');
      expect((await get(`${gw}/api/orders`, alice)).status).toBe(200);
      const third = await get(`${gw}/api/orders`, alice);
      expect([third.status, JSON.parse(third.body.toString()).error.code]).toEqual([429, 'RATE_LIMITED']);
      expect((await get(`${gw}/api/orders`, { authorization: `Bearer ${await token('bob')}` })).status).toBe(200);

      const carol = { authorization: `Bearer ${await token('carol')}` };
      const suspended = await get(`${gw}/api/x`, { ...carol, 'x-tenant': 'suspended' });
      expect([suspended.status, JSON.parse(suspended.body.toString())]).toEqual([403, { error: { code: 'FORBIDDEN', message: 'tenant suspended' } }]);
      const unpaid = await get(`${gw}/api/x`, { ...carol, 'x-tenant': 'unpaid' });
      expect([unpaid.status, unpaid.headers['x-billing'], JSON.parse(unpaid.body.toString())]).toEqual([402, 'overdue', { error: { code: 'PAYMENT_REQUIRED', message: 'pay first' } }]);
      const dave = { authorization: `Bearer ${await token('dave')}` };
      const crash = await get(`${gw}/api/x`, { ...dave, 'x-tenant': 'crash' });
      expect([crash.status, crash.body.toString().includes('secret')]).toEqual([500, false]);

      expect((await get(`${gw}/office/a`)).status).toBe(403);
      expect((await get(`${gw}/local/a`)).status).toBe(200);
    } finally {
      proc.kill('SIGTERM');
      idp.closeAllConnections();
      await new Promise((r) => idp.close(r));
    }
  }, 30_000);
});

describe('config mistakes a new user makes', () => {
  const problems = (routeOrService: string): string => {
    try {
      parseConfig(routeOrService, 'mistake.yaml', {});
      return 'accepted';
    } catch (err) {
      return (err as Error).message;
    }
  };
  const svc = 'services: { api: { upstreams: ["http://127.0.0.1:3001"] } }\n';

  it('a union key given the wrong kind of value says what it takes, not "Invalid input"', () => {
    expect(problems(`${svc}routes: [ { path: /a/*, service: api, rateLimit: { limit: 10, window: 1m, key: sub } } ]`))
      .toContain('routes[0].rateLimit.key: expected "ip" or "route" or an object, got a string');
    expect(problems('services: { api: { upstreams: ["http://127.0.0.1:3001"], maxBodySize: 10mb } }\nroutes: []'))
      .toContain('services.api.maxBodySize: expected a number or false, got a string');
    expect(problems(`${svc}routes: [ { path: /a/*, service: api, rateLimit: { limit: 10 } } ]`))
      .toContain('routes[0].rateLimit.window: required, not set (expected a number or a string)');
  });

  it('a union whose object branch got further still reports that branch with its key path', () => {
    expect(problems(`${svc}routes: [ { path: /a/*, service: api, auth: { jwks: "https://idp.example.com/jwks.json" } } ]`))
      .toContain('routes[0].auth.jwks: Invalid input: expected object, received string');
  });
});
