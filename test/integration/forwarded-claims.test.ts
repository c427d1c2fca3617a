import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * Review R3's forged forwarded-claim headers (notes/s7/full-R3.md, D1+D2):
 * every header any `forwardClaims` of the config writes is deleted from
 * every request on every route, so only a verified token's claim reaches an
 * upstream that trusts it. The gateway is the CLI on a YAML file; the
 * upstream records what it got, plain requests and WebSocket upgrades alike.
 */

const SECRET = 'forwarded-claims-secret-of-at-least-32-bytes';
const FORGED = { 'X-User-Id': 'admin', 'X-Tenant-Id': 'evil', 'x-other': 'kept' };

let runs: RxgateRuns;
let upstream: Server;
let gw = '';
const seen = new Map<string, IncomingMessage['headers']>();

beforeAll(async () => {
  upstream = createServer((req, res) => {
    seen.set(new URL(req.url!, 'http://up').pathname, req.headers);
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  // An upgrade is recorded and refused (the gateway passes the refusal on): its headers are what matter.
  upstream.on('upgrade', (req: IncomingMessage, socket) => {
    seen.set(new URL(req.url!, 'http://up').pathname, req.headers);
    socket.end('HTTP/1.1 403 No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upPort = (upstream.address() as AddressInfo).port;
  runs = rxgateRuns();
  const gateway = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
auth: { secret: "${SECRET}", forwardClaims: { sub: x-user-id } }
services:
  up: { upstreams: ["http://127.0.0.1:${upPort}"], retry: false }
routes:
  - { path: /tenant/*, service: up, auth: { mode: required, forwardClaims: { tenant: x-tenant-id } } }
  - { path: /plain/*, service: up, auth: required }
  - { path: /opt/*, service: up, auth: { mode: optional, forwardClaims: { tenant: x-tenant-id } } }
  - { path: /public/*, service: up, auth: none }
  - { path: /nokey/*, service: up }
  - { path: /off/*, service: up, auth: false }
  - { path: /pl/*, service: up, pipeline: [rateLimit], rateLimit: { limit: 100, window: 1m } }
  - { path: /guarded/*, service: up, pipeline: [auth] }
  - { path: /ws, service: up, websocket: true }
`)], { RXGATE_LOG_LEVEL: 'info' });
  gw = `http://127.0.0.1:${Number((await gateway.logged('rxgate listening'))['port'])}`;
}, 60_000);

afterAll(async () => {
  runs?.remove();
  await new Promise((resolve) => upstream?.close(resolve));
});

function send(path: string, headers: Record<string, string>): Promise<number> {
  const url = new URL(gw + path);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    req.end();
  });
}

function token(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
}

/** What the upstream got for `path`: the two claim headers and one that is no claim's. */
function got(path: string): Array<string | string[] | undefined> {
  const h = seen.get(path)!;
  return [h['x-user-id'], h['x-tenant-id'], h['x-other']];
}

describe('forwarded-claim headers a client sends', () => {
  it('never reach the upstream through a public route: auth none, no auth key, auth false, a pipeline without auth', async () => {
    for (const path of ['/public/a', '/nokey/a', '/off/a', '/pl/a', '/opt/a']) {
      expect(await send(path, FORGED), path).toBe(200);
      expect(got(path), path).toEqual([undefined, undefined, 'kept']);
    }
  });

  it("are replaced by the token's claims on a route with its own forwardClaims, and left out when the token lacks the claim", async () => {
    expect(await send('/tenant/a', { ...FORGED, authorization: `Bearer ${await token({ sub: 'alice', tenant: 't1' })}` })).toBe(200);
    expect(got('/tenant/a')).toEqual([undefined, 't1', 'kept']);
    expect(await send('/tenant/b', { ...FORGED, authorization: `Bearer ${await token({ sub: 'alice' })}` })).toBe(200);
    expect(got('/tenant/b')).toEqual([undefined, undefined, 'kept']);
    expect(await send('/plain/a', { ...FORGED, authorization: `Bearer ${await token({ sub: 'bob', tenant: 't2' })}` })).toBe(200);
    expect(got('/plain/a')).toEqual(['bob', undefined, 'kept']);
  });

  it('never reach the upstream with a WebSocket upgrade', async () => {
    const status = await send('/ws', {
      ...FORGED, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    });
    expect(status).toBe(403);
    expect(got('/ws')).toEqual([undefined, undefined, 'kept']);
  });

  it('leave a route whose pipeline lists auth without options verifying tokens (required), as it did before claims were stripped', async () => {
    expect(await send('/guarded/a', FORGED)).toBe(401);
    expect(await send('/guarded/a', { authorization: `Bearer ${await token({ sub: 'carol' })}` })).toBe(200);
    expect(got('/guarded/a')[0]).toBe('carol');
  });
});
