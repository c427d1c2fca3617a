import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkBuild } from '../../lib/config/check.ts';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { headerRules } from '../../lib/stages/headers/headers.ts';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * The `headers` stage through the CLI on YAML: request headers set, added
 * and removed before forwarding; response headers the same on the way back,
 * cache hits included; the service's rules under a route's.
 */

let runs: RxgateRuns;
let upstream: Server;
let gw = '';
let hits = 0;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    hits++;
    res.setHeader('content-type', 'application/json');
    res.setHeader('server', 'upstream/1.0');
    res.setHeader('x-powered-by', 'express');
    if (req.url!.startsWith('/rules/')) res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.setHeader('cache-control', 'max-age=60');
    res.end(JSON.stringify({ url: req.url, headers: req.headers }));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const port = (upstream.address() as AddressInfo).port;
  runs = rxgateRuns();
  const gateway = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  api:
    upstreams: ["http://127.0.0.1:${port}"]
    headers:
      response: { remove: [x-powered-by] }
routes:
  - path: /rules/*
    service: api
    headers:
      request:
        remove: [x-debug, Authorization]
        set: { X-Api-Version: "2", x-replaced: new }
        add: { x-tag: gateway, cookie: "gw=1" }
      response:
        remove: [server]
        set: { strict-transport-security: "max-age=31536000" }
        add: { set-cookie: "gw=1; Path=/" }
  - path: /cached
    service: api
    cache: { ttl: 30s }
    headers:
      response: { set: { x-frame-options: DENY } }
  - path: /service-only
    service: api
  - path: /no-rules
    service: api
    headers: false
`)], { RXGATE_LOG_LEVEL: 'info' });
  gw = `http://127.0.0.1:${Number((await gateway.logged('rxgate listening'))['port'])}`;
}, 60_000);

afterAll(async () => {
  runs?.remove();
  await new Promise((resolve) => upstream?.close(resolve));
});

describe('headers: request rules', () => {
  it('removes, then sets, then adds before the upstream sees the request', async () => {
    const res = await request(gw + '/rules/x', {
      headers: { 'x-debug': '1', authorization: 'Bearer secret', 'x-replaced': 'old', 'x-tag': 'client', cookie: 'c=1', 'x-kept': 'yes' },
    });
    const seen = (await res.body.json() as { headers: Record<string, string> }).headers;
    expect(seen['x-debug']).toBeUndefined();
    expect(seen['authorization']).toBeUndefined();
    expect(seen['x-api-version']).toBe('2');
    expect(seen['x-replaced']).toBe('new');
    expect(seen['x-tag']).toBe('client, gateway');
    expect(seen['cookie']).toBe('c=1; gw=1');
    expect(seen['x-kept']).toBe('yes');
  });

  it('adds a header the client did not send', async () => {
    const res = await request(gw + '/rules/y');
    const seen = (await res.body.json() as { headers: Record<string, string> }).headers;
    expect(seen['x-tag']).toBe('gateway');
    expect(seen['cookie']).toBe('gw=1');
  });
});

describe('headers: response rules', () => {
  it('removes, sets and adds lines on the response; the route\'s rules replace the service\'s', async () => {
    const res = await request(gw + '/rules/x');
    await res.body.text();
    expect(res.headers['server']).toBeUndefined();
    // The route's `response` object replaced the service's: x-powered-by stays here.
    expect(res.headers['x-powered-by']).toBe('express');
    expect(res.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2', 'gw=1; Path=/']);
  });

  it('applies the service\'s rules to a route without its own', async () => {
    const res = await request(gw + '/service-only');
    await res.body.text();
    expect(res.headers['x-powered-by']).toBeUndefined();
    expect(res.headers['server']).toBe('upstream/1.0');
    const off = await request(gw + '/no-rules');
    await off.body.text();
    expect(off.headers['x-powered-by']).toBe('express');
  });

  it('applies to cache hits, and the stored entry keeps the upstream\'s headers', async () => {
    const before = hits;
    const first = await request(gw + '/cached');
    await first.body.text();
    const second = await request(gw + '/cached');
    await second.body.text();
    expect(hits - before).toBe(1);
    expect(second.headers['x-cache']).toBe('HIT');
    for (const res of [first, second]) {
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['server']).toBe('upstream/1.0');
    }
  });
});

describe('headers: refused configs', () => {
  /** The problems a config is refused with: the schema's, or the build's (as a start or `--check` builds it). */
  async function problems(rules: string): Promise<string> {
    try {
      const config = parseConfig(`
services: { s: { upstreams: ["http://127.0.0.1:1"] } }
routes:
  - { path: /a, service: s, headers: ${rules} }
`, 'test.yaml', {});
      await checkBuild(config, null);
    } catch (err) {
      return err instanceof ConfigError ? err.problems.join('\n') : String(err);
    }
    return '';
  }

  it('refuses CR or LF in a value and a name that is not a token, with the key path', async () => {
    expect(await problems('{ request: { set: { x-a: "v\\r\\nx-evil: 1" } } }')).toMatch(/routes\[0\]\.headers\.request\.set\.x-a: expected a header value/);
    expect(await problems('{ response: { add: { "bad name": v } } }')).toMatch(/routes\[0\]\.headers\.response\.add/);
  });

  it('refuses rules on framing, hop-by-hop and Host, with the key path', async () => {
    expect(await problems('{ request: { set: { Host: a.test } } }')).toMatch(/routes\[0\]\.headers\.request\.set: host is written by the gateway/);
    expect(await problems('{ response: { remove: [Content-Length] } }')).toMatch(/headers\.response\.remove: content-length is written by the gateway/);
    expect(await problems('{ response: { set: { content-encoding: gzip } } }')).toMatch(/content-encoding/);
  });

  it('accepts a response rule removing x-request-id or x-gateway-response-time: the edge leaves them out there (header-rules-edge)', async () => {
    expect(await problems('{ response: { remove: [server, X-Request-Id] } }')).toBe('');
    expect(await problems('{ response: { remove: [x-gateway-response-time] } }')).toBe('');
    expect(await problems('{ request: { remove: [x-request-id] } }')).toBe('');
    expect(headerRules({ response: { remove: ['x-gateway-response-time'] } })).not.toBeNull();
  });

  it('accepts an empty rule set and a value with spaces and tabs', async () => {
    expect(await problems('{ request: {} }')).toBe('');
    expect(await problems('{ response: { set: { x-a: "a b\\tc" } } }')).toBe('');
  });
});
