import type { IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * What a TLS-terminating load balancer in `trustedProxies` says about how
 * the client came in reaches the upstream: its `X-Forwarded-Proto` (`http`
 * or `https`), as Envoy keeps `x-forwarded-proto` from trusted hops; the
 * cache keys by that scheme too. Its `X-Forwarded-Host` and `Forwarded` are
 * not kept: load balancers (AWS ALB, nginx without `proxy_set_header`) pass
 * the client's own through, which would let anyone forge the host an app
 * builds links on, and poison the cache with them. From anyone else all of
 * them are replaced, and `Forwarded` is always dropped.
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
  - { path: /cached/*, service: up, cache: { ttl: 60s } }
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
  it("keeps a trusted proxy's X-Forwarded-Proto, and sets X-Forwarded-Host from the Host it passed on", async () => {
    expect(xf(await from('127.0.0.2', HEAD('/x')))).toEqual(['https', 'internal:8080']);
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
  it("drops a trusted proxy's (it may be the client's, passed on), a stranger's, and any on a route that turns ipFilter off", async () => {
    expect((await from('127.0.0.2', HEAD('/x')))['forwarded']).toBeUndefined();
    expect((await from('127.0.0.3', HEAD('/x')))['forwarded']).toBeUndefined();
    expect((await from('127.0.0.2', HEAD('/unfiltered/x')))['forwarded']).toBeUndefined();
  });
});

describe('the cache behind a trusted proxy', () => {
  it("keys by the scheme the client used, so an answer to http is not served to https", async () => {
    const http = 'GET /cached/r HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Proto: http\r\n\r\n';
    const https = 'GET /cached/r HTTP/1.1\r\nHost: internal:8080\r\nX-Forwarded-Proto: https\r\n\r\n';
    const before = seen.length;
    expect((await from('127.0.0.2', http))['x-forwarded-proto']).toBe('http');
    expect((await from('127.0.0.2', https))['x-forwarded-proto']).toBe('https');
    expect(seen.length - before).toBe(2);
    // Stored: the same scheme again is a hit, nothing goes upstream.
    await expect(from('127.0.0.2', https)).rejects.toThrow('no request upstream');
  });
});
