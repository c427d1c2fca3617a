import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawSend } from '../support/raw-http.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * A Host value nginx's `ngx_http_validate_host` refuses (a byte ≤ 0x20 or
 * 0x7f, `/`, `\`, two dots in a row) is answered 400 and the connection
 * closed (RFC 9112 §3.2), before anything reaches the upstream as
 * `X-Forwarded-Host` or the cache key (second black-box audit, finding 5).
 */

let up: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;
let port = 0;
const seenHosts: string[] = [];

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    req.resume();
    seenHosts.push(String(req.headers['x-forwarded-host']));
    res.end('ok');
  });
  gw = await startGatewayFromYaml(`
services:
  up: { upstreams: ["${up.url}"] }
routes:
  - { path: /*, service: up }
`);
  port = Number(new URL(gw.url).port);
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
});

describe('the Host header', () => {
  it('answers 400 and closes on a Host nginx would refuse as invalid, forwarding nothing', async () => {
    for (const host of ['a b', 'x/../admin', 'a..b', 'a\\b', 'a\x7fb', 'a\tb', '']) {
      const out = await rawSend(port, [`GET /h HTTP/1.1\r\nHost: ${host}\r\n\r\n`], { awaitClose: true });
      expect([out.responses[0]?.status, out.closed], JSON.stringify(host)).toEqual([400, true]);
    }
    expect(seenHosts).toEqual([]);
  });

  it('forwards the hosts nginx accepts: names, a port, an IPv6 literal, a trailing dot, a comma', async () => {
    seenHosts.length = 0;
    for (const host of ['api.example.com', 'api.example.com:8443', '[::1]:8080', 'api.example.com.', 'good.example,evil.example']) {
      const out = await rawSend(port, [`GET /h HTTP/1.1\r\nHost: ${host}\r\n\r\n`]);
      expect(out.responses[0]?.status, host).toBe(200);
    }
    expect(seenHosts).toHaveLength(5);
  });
});
