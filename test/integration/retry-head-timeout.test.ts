import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * The default retry repeats a GET that got no response head within the
 * service's `timeout` only on another instance (nginx's `proxy_next_upstream
 * timeout`): on the same one it would only wait the timeout again, so a
 * single slow instance answered 504 after twice its `timeout`.
 */
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

/** An upstream that never answers, counting the requests it got. */
async function silent(): Promise<TestUpstream & { got: () => number }> {
  let got = 0;
  const up = await startUpstream(() => { got++; });
  open.push(up);
  return Object.assign(up, { got: () => got });
}

async function answering(): Promise<TestUpstream & { got: () => number }> {
  let got = 0;
  const up = await startUpstream((_req, res) => {
    got++;
    res.end('fast');
  });
  open.push(up);
  return Object.assign(up, { got: () => got });
}

async function gateway(service: string, route = '{ path: /*, service: svc }') {
  const gw = await startGatewayFromYaml(`
services:
  svc: ${service}
routes:
  - ${route}
`);
  open.push(gw);
  return gw;
}

describe('retry after a head timeout', () => {
  it('does not send a GET to the one instance a second time: one 504 after one timeout', async () => {
    const up = await silent();
    const gw = await gateway(`{ upstreams: ["${up.url}"], timeout: 200ms }`);
    const res = await request(`${gw.url}/slow`);
    expect(res.statusCode).toBe(504);
    expect(JSON.parse(await res.body.text())).toMatchObject({ error: { code: 'GATEWAY_TIMEOUT' } });
    expect(up.got()).toBe(1);
  });

  it('sends it to another instance when there is one', async () => {
    const slow = await silent();
    const fast = await answering();
    // Round robin from the slow instance: the first GET times out there, its retry goes to the other.
    const gw = await gateway(`{ upstreams: ["${slow.url}", "${fast.url}"], timeout: 200ms, balancer: round-robin }`);
    const first = await request(`${gw.url}/a`);
    const body = await first.body.text();
    expect([first.statusCode, body]).toEqual([200, 'fast']);
    expect(first.headers['x-gateway-attempts']).toBe('2');
    expect([slow.got(), fast.got()]).toEqual([1, 1]);
  });

  it('still retries on the same instance after a per-attempt timeout the route asked for', async () => {
    const up = await silent();
    const gw = await gateway(`{ upstreams: ["${up.url}"], timeout: 30s }`, '{ path: /*, service: svc, timeouts: { perAttempt: 1s } }');
    const res = await request(`${gw.url}/slow`);
    await res.body.text();
    expect(res.statusCode).toBe(504);
    expect(up.got()).toBe(2);
  });
});
