import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { checkBuild } from '../../lib/config/check.ts';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { startWsUpstream, type WsUpstream } from '../support/ws.ts';

/**
 * Audit A15, black-box: who the edge says the client is, and which headers
 * reach the upstream, as users of nginx's `realip` (`set_real_ip_from`,
 * `real_ip_recursive on`), Envoy's `xff_num_trusted_hops`/`xff_trusted_cidrs`
 * and Traefik's `forwardedHeaders.trustedIPs` expect, and as README,
 * docs/security.md, docs/headers.md and docs/cors-and-compression.md say.
 * The gateway is built from YAML; the upstream echoes the raw header lines it
 * got; requests are raw bytes from a chosen loopback address: 127.0.0.2 plays
 * the trusted load balancer, 127.0.0.3 a stranger, 127.0.0.9 a denied host.
 */

interface Seen { target: string; headers: Array<[string, string]> }
interface Answer { status: number; head: string; headers: Record<string, string[]>; body: string; upstream: Seen | null }

let up: TestUpstream;
let ws: WsUpstream;
let gw: Gateway & { url: string };
let port = 0;
const seen: Seen[] = [];
const logLines: string[] = [];

const pairs = (raw: string[]): Array<[string, string]> => raw.flatMap((v, i) => (i % 2 === 0 ? [[v.toLowerCase(), raw[i + 1]!] as [string, string]] : []));

beforeAll(async () => {
  up = await startUpstream((req: IncomingMessage, res) => {
    req.resume();
    seen.push({ target: req.url ?? '', headers: pairs(req.rawHeaders) });
    res.setHeader('access-control-allow-origin', 'https://evil.example');
    res.setHeader('x-upstream', 'yes');
    if (req.url?.startsWith('/cors/etag')) {
      res.setHeader('etag', '"v1"');
      if (req.headers['if-none-match'] === '"v1"') {
        res.statusCode = 304;
        res.end();
        return;
      }
    }
    res.end('ok');
  });
  ws = await startWsUpstream((socket) => socket.on('message', (m) => socket.send(m)));
  const logger = pino({ name: 'rxgate', level: 'info' }, { write: (line: string) => void logLines.push(line) });
  gw = await startGatewayFromYaml(`
trustedProxies: [127.0.0.2/32, "2001:db8:ffff::/48"]
ipFilter: { deny: [127.0.0.9/32] }
services:
  up: { upstreams: ["${up.url}"] }
  ws: { upstreams: ["${ws.url}"] }
routes:
  - { path: /echo/*, service: up }
  - { path: /deny10/*, service: up, ipFilter: { deny: [10.0.0.0/8, "2001:db8:bad::/48"] } }
  - { path: /allow/*, service: up, ipFilter: { allow: [10.0.0.0/8, 127.0.0.3/32], deny: [10.9.0.0/16] } }
  - { path: /open/*, service: up, ipFilter: false }
  - { path: /limited/*, service: up, rateLimit: { limit: 1, window: 1m } }
  - { path: /ws/*, service: ws, websocket: true, ipFilter: { deny: [10.0.0.0/8] } }
  - path: /cors/*
    service: up
    methods: [GET, POST, OPTIONS]
    cors:
      origins: ["https://app.example"]
      allowHeaders: [X-Custom, content-type]
      exposeHeaders: [x-request-id]
      credentials: true
      maxAge: 10m
  - path: /rules/*
    service: up
    headers:
      request: { remove: [x-debug], set: { x-api: "2" }, add: { x-tag: gw } }
      response: { remove: [x-upstream], set: { x-frame-options: DENY }, add: { set-cookie: "gw=1" } }
  - { path: /peer-only/*, service: up, headers: { request: { remove: [x-forwarded-for, x-forwarded-port] } } }
  - { path: /prefixed/*, service: up, headers: { request: { set: { x-forwarded-prefix: /api }, add: { x-forwarded-port: "443" } } } }
  - { path: /cors-rules/*, service: up, cors: { origins: ["https://app.example"] }, headers: { response: { set: { access-control-allow-origin: "https://other.example" } } } }
`, defaultPipeline, process.env, { logger });
  port = Number(new URL(gw.url).port);
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
  await ws?.close();
});

/** Sends `head` from `local` and reads the first answer (Content-Length or empty-bodied), with what the upstream got for it. */
function send(local: string, head: string): Promise<Answer> {
  const before = seen.length;
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', localAddress: local });
    let text = '';
    const done = (): boolean => {
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const head = text.slice(0, end);
      const lines = head.split('\r\n');
      const headers: Record<string, string[]> = {};
      for (const line of lines.slice(1)) {
        const c = line.indexOf(':');
        (headers[line.slice(0, c).toLowerCase()] ??= []).push(line.slice(c + 1).trim());
      }
      const status = Number(lines[0]!.split(' ')[1]);
      const n = Number(headers['content-length']?.[0] ?? 0);
      if (text.length < end + 4 + n) return false;
      s.destroy();
      resolve({ status, head, headers, body: text.slice(end + 4, end + 4 + n), upstream: seen.length > before ? seen[seen.length - 1]! : null });
      return true;
    };
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      done();
    });
    s.on('error', reject);
    s.on('close', () => {
      if (!done()) reject(new Error(`closed without an answer: ${JSON.stringify(text)}`));
    });
    s.write(head);
  });
}

const GET = (path: string, ...lines: string[]): string => `GET ${path} HTTP/1.1\r\nHost: gw.test\r\n${lines.map((l) => l + '\r\n').join('')}\r\n`;
/** Every value of `name` the upstream got, one per line. */
const got = (a: Answer, name: string): string[] => a.upstream?.headers.filter(([n]) => n === name).map(([, v]) => v) ?? [];

describe('a client that is not a trusted proxy', () => {
  const SPOOF = ['X-Forwarded-For: 10.0.0.1', 'X-Real-IP: 10.0.0.1', 'Forwarded: for=10.0.0.1;host=evil.example;proto=https',
    'X-Forwarded-Proto: https', 'X-Forwarded-Host: evil.example', 'X-Forwarded-Port: 443', 'X-Forwarded-Client-Cert: Hash=1'];

  it('is believed about nothing: X-Real-IP is its socket address, its X-Forwarded-For gets that appended, its Forwarded, host and scheme are replaced', async () => {
    const a = await send('127.0.0.3', GET('/echo/x', ...SPOOF));
    expect(a.status).toBe(200);
    expect(got(a, 'x-real-ip')).toEqual(['127.0.0.3']);
    // nginx's $proxy_add_x_forwarded_for and Envoy (use_remote_address) append the peer; the app reads the right-most.
    expect(got(a, 'x-forwarded-for')).toEqual(['10.0.0.1, 127.0.0.3']);
    expect(got(a, 'x-forwarded-proto')).toEqual(['http']);
    expect(got(a, 'x-forwarded-host')).toEqual(['gw.test']);
    expect(got(a, 'forwarded')).toEqual([]);
    expect(got(a, 'x-forwarded-client-cert')).toEqual([]);
  });

  it('is the address the ip filter, the rate limit by ip and the access log use', async () => {
    expect((await send('127.0.0.3', GET('/deny10/x', 'X-Forwarded-For: 1.1.1.1'))).status).toBe(200);
    expect((await send('127.0.0.3', GET('/deny10/x', 'X-Forwarded-For: 10.0.0.1', 'X-Real-IP: 10.0.0.1'))).status).toBe(200);
    const denied = await send('127.0.0.9', GET('/echo/x', 'X-Forwarded-For: 1.1.1.1'));
    expect(denied.status).toBe(403);
    expect(denied.upstream).toBeNull();
    // A new X-Forwarded-For per request does not make a new rate-limit key.
    expect((await send('127.0.0.4', GET('/limited/x', 'X-Forwarded-For: 1.1.1.1'))).status).toBe(200);
    expect((await send('127.0.0.4', GET('/limited/x', 'X-Forwarded-For: 2.2.2.2'))).status).toBe(429);
    await new Promise((r) => setImmediate(r));
    const access = logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'access' && String(l.path).startsWith('/limited/'));
    expect(access.map((l) => l.client)).toEqual(['127.0.0.4', '127.0.0.4']);
  });
});

describe('behind a trusted proxy', () => {
  it('takes the right-most address that is not trusted, across several X-Forwarded-For lines (real_ip_recursive on)', async () => {
    const a = await send('127.0.0.2', GET('/echo/x', 'X-Forwarded-For: 6.6.6.6, 127.0.0.2', 'X-Forwarded-For: 5.5.5.5, 2001:db8:ffff::7'));
    expect(got(a, 'x-real-ip')).toEqual(['5.5.5.5']);
    expect(got(a, 'x-forwarded-for')).toEqual(['6.6.6.6, 127.0.0.2, 5.5.5.5, 2001:db8:ffff::7, 127.0.0.2']);
  });

  it('keeps its X-Forwarded-Proto, never its X-Forwarded-Host, Forwarded or X-Forwarded-Client-Cert', async () => {
    const a = await send('127.0.0.2', GET('/echo/x', 'X-Forwarded-For: 5.5.5.5', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: evil.example', 'Forwarded: for=1.2.3.4', 'X-Forwarded-Client-Cert: Hash=1'));
    expect([got(a, 'x-forwarded-proto'), got(a, 'x-forwarded-host'), got(a, 'forwarded'), got(a, 'x-forwarded-client-cert')]).toEqual([['https'], ['gw.test'], [], []]);
  });

  it('does not read X-Real-IP: only X-Forwarded-For names the client (nginx users set real_ip_header X-Forwarded-For)', async () => {
    const a = await send('127.0.0.2', GET('/echo/x', 'X-Real-IP: 5.5.5.5'));
    expect(got(a, 'x-real-ip')).toEqual(['127.0.0.2']);
  });

  it.each([
    ['ports and brackets are stripped', 'X-Forwarded-For: 10.1.1.1:8080', 403],
    ['an IPv6 entry with a port in brackets', 'X-Forwarded-For: [2001:db8:bad::1]:443', 403],
    ['spaces and empty items are skipped', 'X-Forwarded-For:  10.1.1.1 ,, ,', 403],
    ['an IPv4-mapped IPv6 address counts as its IPv4 address', 'X-Forwarded-For: ::ffff:10.1.1.1', 403],
    ['a zone id does not hide the address', 'X-Forwarded-For: 2001:db8:bad::1%eth0', 403],
    ['`unknown` stops the walk at the nearest trusted hop (the peer)', 'X-Forwarded-For: 10.1.1.1, unknown', 200],
    ['garbage stops it the same way', 'X-Forwarded-For: 10.1.1.1, <script>', 200],
    ['a leading-zero (octal-looking) address is not an address', 'X-Forwarded-For: 010.1.1.1', 200],
  ])('%s (%s)', async (_what, line, status) => {
    const a = await send('127.0.0.2', GET('/deny10/x', line));
    expect(a.status).toBe(status);
    expect(a.upstream === null).toBe(status === 403);
  });

  it('answers a chain of 300 entries, and the right-most untrusted one is the client', async () => {
    const chain = Array.from({ length: 300 }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(', ');
    const a = await send('127.0.0.2', GET('/echo/x', `X-Forwarded-For: ${chain}, 5.5.5.5`));
    expect(a.status).toBe(200);
    expect(got(a, 'x-real-ip')).toEqual(['5.5.5.5']);
  });

  it('writes the client canonically (one spelling per client in keys and logs)', async () => {
    const a = await send('127.0.0.2', GET('/echo/x', 'X-Forwarded-For: 2001:0DB8:0000::0001, 127.0.0.2'));
    expect(got(a, 'x-real-ip')).toEqual(['2001:db8::1']);
  });

  it('drops a zone id from the client it names: one IPv6 client is one key, whatever %zone the chain spells', async () => {
    const keys: string[][] = [];
    for (const zone of ['', '%a', '%b']) keys.push(got(await send('127.0.0.2', GET('/echo/x', `X-Forwarded-For: fe80::7${zone}`)), 'x-real-ip'));
    expect(keys).toEqual([['fe80::7'], ['fe80::7'], ['fe80::7']]);
  });

  it('filters a WebSocket upgrade by the address behind the proxy, the upstream never asked', async () => {
    const before = ws.attempts;
    const a = await send('127.0.0.2', `GET /ws/x HTTP/1.1\r\nHost: gw.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nX-Forwarded-For: 10.2.2.2\r\n\r\n`);
    expect(a.status).toBe(403);
    expect(ws.attempts).toBe(before);
  });
});

describe('ip filter lists', () => {
  it('deny wins over allow; anything outside a non-empty allow is refused with the JSON 403, never forwarded', async () => {
    const cases: Array<[string, number]> = [['10.1.1.1', 200], ['10.9.1.1', 403], ['11.0.0.1', 403]];
    for (const [client, status] of cases) {
      const a = await send('127.0.0.2', GET('/allow/x', `X-Forwarded-For: ${client}`));
      expect([client, a.status, a.upstream === null]).toEqual([client, status, status === 403]);
      if (status === 403) {
        expect(JSON.parse(a.body)).toEqual({ error: { code: 'IP_FORBIDDEN', message: 'your address is not allowed here' } });
        expect(a.headers['content-type']).toEqual(['application/json']);
      }
    }
    expect((await send('127.0.0.3', GET('/allow/x'))).status).toBe(200);
  });

  it('a route with ipFilter: false resolves nothing: the gateway-wide deny list is off there and X-Real-IP is the peer', async () => {
    const a = await send('127.0.0.9', GET('/open/x', 'X-Forwarded-For: 5.5.5.5'));
    expect(a.status).toBe(200);
    const b = await send('127.0.0.2', GET('/open/x', 'X-Forwarded-For: 5.5.5.5', 'X-Forwarded-Proto: https'));
    expect([got(b, 'x-real-ip'), got(b, 'x-forwarded-proto')]).toEqual([['127.0.0.2'], ['http']]);
  });
});

describe('hop-by-hop headers (RFC 9110 §7.6.1)', () => {
  it('drops the ones named in Connection, TE, Proxy-Authorization and Upgrade on a plain request', async () => {
    const a = await send('127.0.0.3', GET('/echo/x', 'Connection: keep-alive, X-Secret, upgrade', 'X-Secret: 1', 'X-Kept: 1', 'TE: trailers', 'Proxy-Authorization: Basic eDp5', 'Upgrade: h2c', 'Keep-Alive: timeout=5', 'Proxy-Connection: keep-alive'));
    const names = a.upstream!.headers.map(([n]) => n);
    expect(names).toContain('x-kept');
    for (const n of ['x-secret', 'te', 'proxy-authorization', 'upgrade', 'keep-alive', 'proxy-connection']) expect(names).not.toContain(n);
  });

  it("cannot strip the gateway's own headers by naming them in Connection", async () => {
    const a = await send('127.0.0.3', GET('/echo/x', 'Connection: x-forwarded-for, x-real-ip, x-request-id, x-forwarded-proto, x-forwarded-host', 'X-Request-Id: mine'));
    expect([got(a, 'x-forwarded-for'), got(a, 'x-real-ip'), got(a, 'x-request-id'), got(a, 'x-forwarded-proto'), got(a, 'x-forwarded-host')])
      .toEqual([['127.0.0.3'], ['127.0.0.3'], ['mine'], ['http'], ['gw.test']]);
  });
});

describe('X-Request-Id', () => {
  it("keeps an acceptable client id, upstream and on the answer; replaces an unacceptable one with the gateway's", async () => {
    const a = await send('127.0.0.3', GET('/echo/x', 'X-Request-Id: abc-123'));
    expect([got(a, 'x-request-id'), a.headers['x-request-id']]).toEqual([['abc-123'], ['abc-123']]);
    const b = await send('127.0.0.3', GET('/echo/x', `X-Request-Id: ${'a'.repeat(201)}`));
    expect(got(b, 'x-request-id')[0]).not.toBe('a'.repeat(201));
    expect(b.headers['x-request-id']).toEqual(got(b, 'x-request-id'));
    const c = await send('127.0.0.3', GET('/nowhere'));
    expect(c.status).toBe(404);
    expect(c.headers['x-request-id']?.[0]).toMatch(/^[0-9a-f]{16}-\d+$/);
  });
});

describe('CORS', () => {
  const ORIGIN = 'Origin: https://app.example';
  const preflight = (path: string, origin: string, method: string, ...more: string[]): string =>
    `OPTIONS ${path} HTTP/1.1\r\nHost: gw.test\r\nOrigin: ${origin}\r\nAccess-Control-Request-Method: ${method}\r\n${more.map((l) => l + '\r\n').join('')}\r\n`;

  it('answers an admitted preflight itself: 204, the origin, credentials, methods the route takes, its headers, Max-Age, Vary', async () => {
    const a = await send('127.0.0.3', preflight('/cors/x', 'https://app.example', 'POST', 'Access-Control-Request-Headers: X-CUSTOM, Content-Type'));
    expect(a.status).toBe(204);
    expect(a.upstream).toBeNull();
    expect(a.headers['access-control-allow-origin']).toEqual(['https://app.example']);
    expect(a.headers['access-control-allow-credentials']).toEqual(['true']);
    expect(a.headers['access-control-allow-methods']).toEqual(['GET, HEAD, POST']);
    expect(a.headers['access-control-allow-headers']).toEqual(['X-Custom, content-type']);
    expect(a.headers['access-control-max-age']).toEqual(['600']);
    expect(a.headers['vary']?.join(', ')).toMatch(/Origin/);
  });

  it.each([['another origin', 'https://evil.example'], ['the null origin', 'null'], ['the same host over http', 'http://app.example']])(
    'refuses %s with 403 and no CORS headers, Vary: Origin kept', async (_what, origin) => {
      const a = await send('127.0.0.3', preflight('/cors/x', origin, 'GET'));
      expect(a.status).toBe(403);
      expect(a.upstream).toBeNull();
      expect(a.headers['access-control-allow-origin']).toBeUndefined();
      expect(a.headers['vary']?.join(', ')).toMatch(/Origin/);
    });

  it("gives a simple request the origin, credentials, exposed headers and Vary, and drops the upstream's own CORS headers", async () => {
    const a = await send('127.0.0.3', GET('/cors/x', ORIGIN));
    expect(a.status).toBe(200);
    expect(a.headers['access-control-allow-origin']).toEqual(['https://app.example']);
    expect(a.headers['access-control-allow-credentials']).toEqual(['true']);
    expect(a.headers['access-control-expose-headers']).toEqual(['x-request-id']);
    expect(a.headers['vary']?.join(', ')).toMatch(/Origin/);
    const other = await send('127.0.0.3', GET('/cors/x', 'Origin: https://evil.example'));
    expect([other.status, other.headers['access-control-allow-origin'], other.headers['vary']?.join(', ')]).toEqual([200, undefined, 'Origin']);
  });

  it("puts Vary: Origin on a 304, an ip filter's 403 and the router's 405", async () => {
    const notModified = await send('127.0.0.3', GET('/cors/etag', ORIGIN, 'If-None-Match: "v1"'));
    expect(notModified.status).toBe(304);
    expect(notModified.headers['vary']?.join(', ')).toMatch(/Origin/);
    const forbidden = await send('127.0.0.9', GET('/cors/x', ORIGIN));
    expect([forbidden.status, forbidden.headers['access-control-allow-origin'], forbidden.headers['vary']?.join(', ')]).toEqual([403, ['https://app.example'], 'Origin']);
    const notAllowed = await send('127.0.0.3', `DELETE /cors/x HTTP/1.1\r\nHost: gw.test\r\n${ORIGIN}\r\nContent-Length: 0\r\n\r\n`);
    expect([notAllowed.status, notAllowed.headers['access-control-allow-origin'], notAllowed.headers['vary']?.join(', ')]).toEqual([405, ['https://app.example'], 'Origin']);
  });

  it('answers a preflight for a method the route does not take without it, and one on no route 404', async () => {
    const a = await send('127.0.0.3', preflight('/cors/x', 'https://app.example', 'DELETE'));
    expect([a.status, a.headers['access-control-allow-methods']]).toEqual([204, ['GET, HEAD, POST']]);
    const b = await send('127.0.0.3', preflight('/nowhere', 'https://app.example', 'GET'));
    expect([b.status, b.headers['access-control-allow-origin']]).toEqual([404, undefined]);
  });
});

describe('header rules', () => {
  it('remove, set and add on the request the upstream gets and on the answer', async () => {
    const a = await send('127.0.0.3', GET('/rules/x', 'X-Debug: 1', 'X-Api: 1', 'X-Tag: client'));
    expect([got(a, 'x-debug'), got(a, 'x-api'), got(a, 'x-tag')]).toEqual([[], ['2'], ['client, gw']]);
    expect([a.headers['x-upstream'], a.headers['x-frame-options'], a.headers['set-cookie']]).toEqual([undefined, ['DENY'], ['gw=1']]);
  });

  it("on a cors route, a response rule's Access-Control-* header gives way to the cors stage's (docs/headers.md)", async () => {
    const a = await send('127.0.0.3', GET('/cors-rules/x', 'Origin: https://app.example'));
    expect(a.headers['access-control-allow-origin']).toEqual(['https://app.example']);
  });

  it("a rule removing X-Forwarded-For leaves the upstream the peer alone (nginx's proxy_set_header X-Forwarded-For $remote_addr)", async () => {
    const a = await send('127.0.0.3', GET('/peer-only/x', 'X-Forwarded-For: 10.0.0.1', 'X-Forwarded-Port: 6666'));
    expect([got(a, 'x-forwarded-for'), got(a, 'x-forwarded-port')]).toEqual([['127.0.0.3'], []]);
  });
});

describe('refused configs, with the key path', () => {
  /** The problems a config is refused with (schema or build), '' when it is accepted. */
  async function problems(route: string, top = ''): Promise<string> {
    try {
      await checkBuild(parseConfig(`${top}
services: { s: { upstreams: ["http://127.0.0.1:1"] } }
routes:
  - { path: /a, service: s, ${route} }
`, 'test.yaml', {}), null);
    } catch (err) {
      return err instanceof ConfigError ? err.problems.join('\n') : String(err);
    }
    return '';
  }

  it.each(['x-forwarded-client-cert', 'X-Forwarded-Proto', 'x-forwarded-host', 'x-real-ip', 'x-request-id', 'forwarded'])(
    'a request rule that sets or adds %s, which would never reach the upstream', async (name) => {
      expect(await problems(`headers: { request: { set: { ${name}: v } } }`)).toMatch(new RegExp(`routes\\[0\\]\\.headers\\.request\\.set: ${name.toLowerCase()} would never reach the upstream`));
      expect(await problems(`headers: { request: { add: { ${name}: v } } }`)).toMatch(/routes\[0\]\.headers\.request\.add: .* would never reach the upstream/);
    });

  it('accepts removing them (no client copy reaches the upstream either way), a rule on x-forwarded-for, and response rules on them', async () => {
    expect(await problems('headers: { request: { remove: [x-forwarded-client-cert, forwarded, x-real-ip] } }')).toBe('');
    expect(await problems('headers: { request: { set: { x-forwarded-for: 192.0.2.1 } } }')).toBe('');
    expect(await problems('headers: { response: { set: { x-request-id: a, x-real-ip: b } } }')).toBe('');
  });

  it('refuses Host and hop-by-hop names in rules, and CR/LF/NUL in values', async () => {
    expect(await problems('headers: { request: { set: { host: a } } }')).toMatch(/routes\[0\]\.headers\.request\.set: host is written by the gateway/);
    expect(await problems('headers: { request: { remove: [connection] } }')).toMatch(/routes\[0\]\.headers\.request\.remove: connection/);
    for (const v of ['"a\\r\\nx: 1"', '"a\\nb"', '"a\\0b"']) expect(await problems(`headers: { response: { set: { x-a: ${v} } } }`)).toMatch(/routes\[0\]\.headers\.response\.set\.x-a: expected a header value/);
  });

  it('refuses a CIDR with host bits set, naming the network and the host; takes /0, /32 and /128', async () => {
    expect(await problems('ipFilter: { allow: [10.0.0.1/8] }')).toMatch(/routes\[0\]\.ipFilter\.allow\[0\]: 10\.0\.0\.1\/8 has bits set past its \/8 prefix: write 10\.0\.0\.0\/8 for the network, or 10\.0\.0\.1 for the one address/);
    expect(await problems('ipFilter: false', 'trustedProxies: ["2001:db8::1/32"]')).toMatch(/trustedProxies\[0\]: 2001:db8::1\/32 has bits set/);
    expect(await problems('ipFilter: { deny: [0.0.0.0/0, "::/0", 192.0.2.1/32, "2001:db8::1/128"] }')).toBe('');
    expect(await problems('ipFilter: { deny: [10.0.0.0/33] }')).toMatch(/routes\[0\]\.ipFilter\.deny\[0\]: expected an IP address or CIDR/);
    expect(await problems('ipFilter: { deny: ["fe80::1%eth0"] }')).toBe('');
  });

  it('refuses cors credentials with the * origin', async () => {
    expect(await problems('cors: { credentials: true }')).toMatch(/credentials: true needs a list of origins/);
  });
});

/**
 * What audit A15 found in files it did not own (A15-findings.md F1, F2 and the peer's spelling),
 * fixed by the lead from its proposals: lib/upstream/upstream-headers.ts, lib/server/edge.ts.
 */
describe('forwarding headers a client cannot choose, and the peer as nginx writes it', () => {
  it("drops a client's X-Forwarded-Port, -Prefix, -Scheme and -Ssl, as it drops its X-Forwarded-Host (F1)", async () => {
    const a = await send('127.0.0.3', GET('/echo/x', 'X-Forwarded-Port: 6666', 'X-Forwarded-Prefix: /evil', 'X-Forwarded-Scheme: https', 'X-Forwarded-Ssl: on'));
    expect([got(a, 'x-forwarded-port'), got(a, 'x-forwarded-prefix'), got(a, 'x-forwarded-scheme'), got(a, 'x-forwarded-ssl')]).toEqual([[], [], [], []]);
  });

  it('sends the X-Forwarded-Prefix and -Port a request rule writes (set and add), and never the client\'s own beside them', async () => {
    const a = await send('127.0.0.3', GET('/prefixed/x', 'X-Forwarded-Port: 6666', 'X-Forwarded-Prefix: /evil', 'X-Forwarded-Ssl: on'));
    expect([got(a, 'x-forwarded-prefix'), got(a, 'x-forwarded-port'), got(a, 'x-forwarded-ssl')]).toEqual([['/api'], ['443'], []]);
  });

  it('a client X-Forwarded-For that Connection names is hop-by-hop: the upstream gets the peer alone (F2)', async () => {
    const a = await send('127.0.0.3', GET('/echo/x', 'Connection: x-forwarded-for', 'X-Forwarded-For: 10.0.0.1'));
    expect(got(a, 'x-forwarded-for')).toEqual(['127.0.0.3']);
  });

  describe('on a dual-stack listener (host ::)', () => {
    let dual: Gateway & { url: string };
    const dualLog: string[] = [];
    beforeAll(async () => {
      const logger = pino({ name: 'rxgate', level: 'info' }, { write: (line: string) => void dualLog.push(line) });
      dual = await startGatewayFromYaml(`
services:
  up: { upstreams: ["${up.url}"] }
routes:
  - { path: /*, service: up }
`, defaultPipeline, process.env, { logger, host: '::' });
    });
    afterAll(async () => {
      await dual?.close();
    });

    it('writes an IPv4 client as 127.0.0.3 in X-Real-IP, X-Forwarded-For and the access log (F3)', async () => {
      const before = seen.length;
      const text = await new Promise<string>((resolve, reject) => {
        const s = connect({ port: Number(new URL(dual.url).port), host: '127.0.0.1', localAddress: '127.0.0.3' });
        let t = '';
        s.on('data', (d: Buffer) => {
          t += d.toString('latin1');
          if (t.endsWith('ok')) {
            s.destroy();
            resolve(t);
          }
        });
        s.on('error', reject);
        s.write(GET('/x'));
      });
      expect(text).toMatch(/^HTTP\/1\.1 200/);
      await new Promise((r) => setImmediate(r));
      const headers = seen[before]!.headers;
      const access = dualLog.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'access');
      expect([headers.find(([n]) => n === 'x-real-ip')?.[1], headers.find(([n]) => n === 'x-forwarded-for')?.[1], access[0]?.client])
        .toEqual(['127.0.0.3', '127.0.0.3', '127.0.0.3']);
    });
  });
});
