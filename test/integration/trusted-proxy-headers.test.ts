import type { IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * What a TLS-terminating load balancer in `trustedProxies` says about the
 * client's request reaches the upstream: its `X-Forwarded-Proto` (`http` or
 * `https`), `X-Forwarded-Host` and `Forwarded` are kept, as Envoy keeps
 * `x-forwarded-proto` from trusted hops and APISIX keeps `X-Forwarded-*`
 * from `trusted_addresses`. From anyone else they are replaced, and a
 * `Forwarded` is dropped (second black-box audit, findings 1 and 2).
 * 127.0.0.2 plays the trusted proxy, 127.0.0.3 a stranger.
 */

let up: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;
let port = 0;
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    req.resume();
    seen.push(req.headers);
    res.end('ok');
  });
  gw = await startGatewayFromYaml(`
trustedProxies: [127.0.0.2/32]
services:
  up: { upstreams: ["${up.url}"] }
routes:
  - { path: /*, service: up }
  - { path: /unfiltered/*, service: up, ipFilter: false }
`);
  port = Number(new URL(gw.url).port);
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

/** Sends `head` from `localAddress` and resolves with the headers the upstream got. */
function from(localAddress: string, head: string): Promise<IncomingHttpHeaders> {
  const before = seen.length;
  return new Promise((resolve, reject) => {
    const s: Socket = connect({ port, host: '127.0.0.1', localAddress });
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (/\r\n\r\n[\s\S]*ok/.test(text)) {
        s.destroy();
        if (seen.length > before) resolve(seen[seen.length - 1]!);
        else reject(new Error(`no request upstream: ${text}`));
      }
    });
    s.on('error', reject);
    s.write(head);
  });
}

const HEAD = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: api.example.com\r\nForwarded: for=10.0.0.1;host=api.example.com;proto=https\r\n\r\n`;
const xf = (h: IncomingHttpHeaders): unknown[] => [h['x-forwarded-proto'], h['x-forwarded-host']];

describe('X-Forwarded-Proto and X-Forwarded-Host', () => {
  it('keeps those a trusted proxy sent', async () => {
    expect(xf(await from('127.0.0.2', HEAD('/x')))).toEqual(['https', 'api.example.com']);
  });

  it("replaces a stranger's with the gateway's own", async () => {
    expect(xf(await from('127.0.0.3', HEAD('/x')))).toEqual(['http', 'internal:8080']);
  });

  it('sets its own when the trusted proxy sent none, or an X-Forwarded-Proto other than http or https', async () => {
    expect(xf(await from('127.0.0.2', 'GET /x HTTP/1.1\r\nHost: internal:8080\r\n\r\n'))).toEqual(['http', 'internal:8080']);
    expect(xf(await from('127.0.0.2', 'GET /x HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Proto: javascript\r\n\r\n'))).toEqual(['http', 'internal:8080']);
  });

  it('trusts no one on a route that turns ipFilter off', async () => {
    expect(xf(await from('127.0.0.2', HEAD('/unfiltered/x')))).toEqual(['http', 'internal:8080']);
  });
});

describe('Forwarded (RFC 7239)', () => {
  it('keeps the one a trusted proxy sent', async () => {
    expect((await from('127.0.0.2', HEAD('/x')))['forwarded']).toBe('for=10.0.0.1;host=api.example.com;proto=https');
  });

  it("drops a stranger's, and any on a route that turns ipFilter off", async () => {
    expect((await from('127.0.0.3', HEAD('/x')))['forwarded']).toBeUndefined();
    expect((await from('127.0.0.2', HEAD('/unfiltered/x')))['forwarded']).toBeUndefined();
  });
});
