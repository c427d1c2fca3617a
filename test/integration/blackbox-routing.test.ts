import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * The sixth black-box audit (notes/s9/A6-findings.md): rxgate started as
 * users start it (the CLI on one YAML file) and probed as users of nginx,
 * Envoy, Traefik or Kong would probe it, on what the earlier audits left:
 * route precedence and methods, paths and rewrites as the upstream sees
 * them, request bodies over the limit or cut short, and what the gateway
 * does to responses (compression, Range, Vary, ETag).
 *
 * One upstream serves every case. It answers JSON naming the method, the
 * raw target and the body length it got, unless the query asks for
 * another answer: `size=N` (N bytes of text), `ct=` (its Content-Type),
 * `h=name:value` (repeatable), `status=` (no body), `gz=1` (gzip-encoded
 * by the upstream), `range=1` (a 206 for the request's Range). It records
 * every request by target and whether its body arrived whole.
 */

let runs: RxgateRuns;
let upstream: Server;
let gwPort = 0;

interface Seen { method: string; target: string; headers: IncomingMessage['headers']; bytes: number; complete: boolean | null }
/** Requests the upstream got, in order; `complete` is null while the body is still coming. */
const seen: Seen[] = [];
const seenAt = (target: string): Seen[] => seen.filter((s) => s.target === target);

const FULL = 'abcdefghij'.repeat(500); // 5,000 bytes, for ranges

function answer(req: IncomingMessage, res: ServerResponse): void {
  const record: Seen = { method: req.method!, target: req.url!, headers: req.headers, bytes: 0, complete: null };
  seen.push(record);
  req.on('data', (c: Buffer) => { record.bytes += c.length; });
  req.on('close', () => { record.complete ??= false; });
  req.on('end', () => {
    record.complete = true;
    const q = new URL(req.url!, 'http://up').searchParams;
    const headers: Record<string, string> = { 'content-type': q.get('ct') ?? 'application/json' };
    for (const h of q.getAll('h')) headers[h.slice(0, h.indexOf(':'))] = h.slice(h.indexOf(':') + 1);
    if (q.has('status')) {
      res.writeHead(Number(q.get('status')), headers).end();
      return;
    }
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (q.has('range') && range !== null) {
      const [from, to] = [Number(range[1]), Number(range[2])];
      res.writeHead(206, { ...headers, 'content-range': `bytes ${from}-${to}/${FULL.length}`, 'accept-ranges': 'bytes' }).end(FULL.slice(from, to + 1));
      return;
    }
    const body = q.has('size') ? FULL.repeat(Math.ceil(Number(q.get('size')) / FULL.length)).slice(0, Number(q.get('size')))
      : JSON.stringify({ method: req.method, target: req.url, bytes: record.bytes });
    if (q.has('gz')) {
      res.writeHead(200, { ...headers, 'content-encoding': 'gzip' }).end(gzipSync(body));
      return;
    }
    // Content-Length set: compression decides on the known length.
    res.writeHead(200, { ...headers, 'content-length': String(Buffer.byteLength(body)) }).end(body);
  });
}

interface Answer { status: number; head: string; headers: Record<string, string>; body: Buffer }

/** Sends `text` (the request's bytes, which say `Connection: close`) and reads the answer until the gateway closes. */
function raw(text: string | Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const socket = connect(gwPort, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      let at = all.indexOf('\r\n\r\n');
      let head = all.subarray(0, at).toString('latin1');
      // A 100 Continue before the answer.
      if (/^HTTP\/1\.1 100 /.test(head)) {
        const next = all.indexOf('\r\n\r\n', at + 4);
        head = all.subarray(at + 4, next).toString('latin1');
        at = next;
      }
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const name = line.slice(0, line.indexOf(':')).toLowerCase();
        const value = line.slice(line.indexOf(':') + 1).trim();
        headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
      }
      let body: Buffer = all.subarray(at + 4);
      if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
      resolve({ status: Number(head.split(' ')[1]), head, headers, body });
    });
    socket.write(text);
  });
}

function dechunk(buf: Buffer): Buffer {
  const out: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', pos);
    const size = parseInt(buf.subarray(pos, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    out.push(buf.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
  return Buffer.concat(out);
}

const get = (target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> =>
  raw(`${method} ${target} HTTP/1.1\r\nHost: gw.test\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`);

/** The target the upstream got for `target`, or the gateway's status and error code when it answered itself. */
async function reached(target: string, method = 'GET'): Promise<string> {
  const res = await get(target, {}, method);
  if (res.status !== 200) return `${res.status} ${(JSON.parse(res.body.toString()) as { error: { code: string } }).error.code}`;
  return (JSON.parse(res.body.toString()) as { target: string }).target;
}

beforeAll(async () => {
  upstream = createServer(answer);
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  runs = rxgateRuns();
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  up: { upstreams: ["${up}"] }
routes:
  - { path: /api/*, service: up }
  - { path: /api/users/:id, service: up, methods: [GET] }
  - { path: /exact, service: up, methods: [GET, POST] }
  - { path: /admin, service: up }
  - { path: /strip/*, service: up, rewrite: { stripPrefix: /strip } }
  - { path: /strip-slash/*, service: up, rewrite: { stripPrefix: /strip-slash/ } }
  - { path: /deep/*, service: up, rewrite: { stripPrefix: /deep/v1 } }
  - { path: /re/*, service: up, rewrite: { pattern: "^/re/([^/]+)/(.*)$", replacement: "/v2/$2/$1" } }
  - { path: /cap/*, service: up, rewrite: { pattern: "^/cap/x(.*)$", replacement: "/v2/$1" } }
  - { path: /keep/*, service: up, encodedSlashes: keep, rewrite: { stripPrefix: /keep } }
  - { path: /limited/*, service: up, maxBodySize: 10 }
  - { path: /gz/*, service: up, compression: true }
  - { path: /cached/*, service: up, cache: { ttl: 60s } }
`)]);
  gwPort = Number((await proc.logged('rxgate listening'))['port']);
});

afterAll(async () => {
  runs?.remove();
  await new Promise((r) => upstream?.close(r));
});

describe('routing', () => {
  it('picks the most specific route, matches case-sensitively, and never looks at the query', async () => {
    const cases: Array<[string, string]> = [
      ['/api', '/api'], ['/api/', '/api/'], ['/api/x/y', '/api/x/y'],
      ['/apix', '404 ROUTE_NOT_FOUND'], ['/API/x', '404 ROUTE_NOT_FOUND'], ['/Exact', '404 ROUTE_NOT_FOUND'],
      ['/exact', '/exact'], ['/exact/', '/exact/'], ['/exact?x=1&y', '/exact?x=1&y'],
      ['/api/users/5?a=%20', '/api/users/5?a=%20'],
    ];
    for (const [target, expected] of cases) expect(await reached(target), target).toBe(expected);
    // /api/users/:id [GET] over /api/*; a POST there falls through to /api/*, which serves any method.
    expect(await reached('/api/users/5', 'POST')).toBe('/api/users/5');
  });

  it('answers 404 and 405 with the JSON error body, Allow listing HEAD beside GET; HEAD is served by a GET route', async () => {
    const missing = await get('/nothing');
    expect([missing.status, missing.headers['content-type'], JSON.parse(missing.body.toString())]).toEqual([404, 'application/json', { error: { code: 'ROUTE_NOT_FOUND', message: 'no route for GET /nothing' } }]);
    for (const method of ['DELETE', 'PUT', 'OPTIONS']) {
      const res = await get('/exact', {}, method);
      expect([res.status, res.headers['allow'], JSON.parse(res.body.toString()).error.code], method).toEqual([405, 'GET, HEAD, POST', 'METHOD_NOT_ALLOWED']);
    }
    const head = await get('/exact', {}, 'HEAD');
    expect([head.status, head.body.length]).toEqual([200, 0]);
    const trace = await get('/api/x', {}, 'TRACE');
    expect([trace.status, trace.headers['allow']]).toEqual([405, 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS']);
  });
});

describe('paths as the upstream sees them', () => {
  it('resolves dot-segments and slash runs before matching, so a prefix route cannot be escaped, and forwards what it matched', async () => {
    const cases: Array<[string, string]> = [
      ['/api/../admin', '/admin'], ['/api/%2e%2e/admin', '/admin'], ['/api/%2E%2E/admin', '/admin'],
      ['/api/./x', '/api/x'], ['//api//x', '/api/x'], ['/api/x/..', '/api/'],
      ['/api/../nothing', '404 ROUTE_NOT_FOUND'],
      ['/api/x;a=b', '/api/x;a=b'], ['/api/%23x', '/api/%23x'], ['/api/caf%C3%A9', '/api/caf%C3%A9'],
      // Refused: encoded slash or backslash (the route does not keep them), overlong UTF-8, bytes that are not UTF-8, a fragment.
      ['/api/a%2fb', '400 BAD_REQUEST'], ['/api/a%5Cb', '400 BAD_REQUEST'], ['/api/a\\b', '400 BAD_REQUEST'],
      ['/api/%c0%ae%c0%ae/admin', '400 BAD_REQUEST'], ['/api/%ff', '400 BAD_REQUEST'], ['/api/x#frag', '400 BAD_REQUEST'],
      ['/keep/a%2Fb', '/a%2Fb'],
      // A fragment after the query too (the upstream may cut it there, match.query would not); an encoded # is data.
      ['/api/x?a=1#frag', '400 BAD_REQUEST'], ['/api/x?a=%23&b', '/api/x?a=%23&b'],
    ];
    for (const [target, expected] of cases) expect(await reached(target), target).toBe(expected);
  });

  it('refuses an encoded NUL and a dot-segment with a path parameter (..;), which Tomcat and Jetty read as .., before any upstream sees them', async () => {
    for (const target of ['/api/%00', '/api/a%00b/x', '/api/..;/admin', '/api/.;/admin', '/api/%2e%2e;/admin', '/api/..%3B/admin']) {
      const before = seen.length;
      const res = await get(target);
      expect([res.status, JSON.parse(res.body.toString()).error.code], target).toEqual([400, 'BAD_REQUEST']);
      expect(seen.length, target).toBe(before);
    }
  });

  it('answers a target over maxUrlLength 414 with the JSON error body', async () => {
    const res = await get(`/api/${'x'.repeat(9000)}`);
    expect([res.status, JSON.parse(res.body.toString()).error.code]).toEqual([414, 'URI_TOO_LONG']);
  });

  it('rewrites the path only, by stripPrefix (with or without its slash) or a pattern, keeping encodings and the query as sent', async () => {
    const cases: Array<[string, string]> = [
      ['/strip', '/'], ['/strip/', '/'], ['/strip/x?q=1', '/x?q=1'], ['/strip/a%20b/c', '/a%20b/c'],
      ['/strip-slash', '/'], ['/strip-slash/y', '/y'],
      ['/deep/v1/z', '/z'], ['/deep/v2/z', '/deep/v2/z'], ['/deep/v1x', '/deep/v1x'],
      ['/re/a/b/c?x=%20', '/v2/b/c/a?x=%20'], ['/re/a%20b/c', '/v2/c/a%20b'],
      ['/strip/../api/x', '/api/x'], // normalised first: the /api/* route, no rewrite
      ['/cap/xy/z', '/v2/y/z'],
      // A capture from inside a segment that makes a dot-segment would let the upstream resolve out of /v2: refused.
      ['/cap/x../admin', '400 BAD_REQUEST'], ['/cap/x%2e%2e/admin', '400 BAD_REQUEST'], ['/cap/x..;/admin', '400 BAD_REQUEST'],
    ];
    for (const [target, expected] of cases) expect(await reached(target), target).toBe(expected);
  });

  it('strips the prefix however the client percent-encoded it, by the segments the route matched', async () => {
    expect(await reached('/%73trip/x%20y?q')).toBe('/x%20y?q');
    expect(await reached('/deep/%761/z')).toBe('/z');
    expect(await reached('/str%69p')).toBe('/');
  });
});

describe('request bodies', () => {
  it('refuses a body over maxBodySize by its Content-Length with 413 before any upstream sees it, with or without Expect: 100-continue', async () => {
    for (const [target, extra] of [['/limited/cl', ''], ['/limited/expect', 'Expect: 100-continue\r\n']] as const) {
      const res = await raw(`POST ${target} HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 11\r\n${extra}Connection: close\r\n\r\nhello world`);
      expect([res.status, JSON.parse(res.body.toString()).error.code], target).toEqual([413, 'PAYLOAD_TOO_LARGE']);
      expect(seenAt(target), target).toEqual([]);
    }
  });

  it('forwards a body at the limit and an empty POST with Content-Length: 0 whole', async () => {
    expect(JSON.parse((await raw('POST /limited/at HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789')).body.toString())).toMatchObject({ bytes: 10 });
    const empty = await raw('POST /limited/empty HTTP/1.1\r\nHost: gw.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    expect(empty.status).toBe(200);
    expect(seenAt('/limited/empty').map((s) => [s.headers['content-length'], s.bytes, s.complete])).toEqual([['0', 0, true]]);
  });

  it('cuts a chunked body at the limit: 413 to the client, and the upstream sees its request aborted, never complete', async () => {
    const socket = connect(gwPort, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    socket.write('POST /limited/chunked HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n');
    await until(() => seenAt('/limited/chunked')[0]?.bytes === 8);
    socket.write('8\r\n89abcdef\r\n0\r\n\r\n');
    await until(() => got.includes('\r\n\r\n{'));
    expect(got).toMatch(/^HTTP\/1\.1 413 /);
    await until(() => seenAt('/limited/chunked')[0]?.complete !== null);
    expect(seenAt('/limited/chunked')[0]).toMatchObject({ bytes: 8, complete: false });
    socket.destroy();
  });

  it('aborts the upstream request when the client stops mid-body, sized or chunked', async () => {
    for (const [target, head, part] of [
      ['/api/stop-sized', 'Content-Length: 100', '0123456789'],
      ['/api/stop-chunked', 'Transfer-Encoding: chunked', '5\r\nhello\r\n'],
    ] as const) {
      const socket = connect(gwPort, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`POST ${target} HTTP/1.1\r\nHost: gw.test\r\n${head}\r\n\r\n${part}`);
      await until(() => seenAt(target)[0]?.bytes === 5 || seenAt(target)[0]?.bytes === 10);
      socket.destroy();
      await until(() => seenAt(target)[0]?.complete !== null);
      expect(seenAt(target)[0]!.complete, target).toBe(false);
    }
  });
});

describe('compression', () => {
  const gz = (target: string, headers: Record<string, string> = {}, method?: string): Promise<Answer> => get(`/gz/${target}`, headers, method);
  const decoded = (res: Answer): string => {
    const ce = res.headers['content-encoding'];
    return (ce === 'gzip' ? gunzipSync(res.body) : ce === 'br' ? brotliDecompressSync(res.body) : res.body).toString();
  };

  it('follows Accept-Encoding q-values: q=0 refuses a coding, * stands for the rest, identity;q=0 alone gets identity', async () => {
    const cases: Array<[string | undefined, string | undefined]> = [
      [undefined, undefined], ['gzip', 'gzip'], ['br', 'br'], ['gzip, br', 'br'], ['x-gzip', 'gzip'],
      ['gzip;q=0', undefined], ['gzip;q=0, br', 'br'], ['br;q=0.5, gzip;q=0.8', 'gzip'], ['br;q=0, *', 'gzip'],
      ['*', 'br'], ['*;q=0', undefined], ['identity', undefined], ['identity;q=0', undefined], ['gzip;q=0.1, identity', undefined],
      ['gzip;q=bogus', undefined],
    ];
    for (const [accept, coding] of cases) {
      const res = await gz('q?size=5000', accept === undefined ? {} : { 'accept-encoding': accept });
      expect([res.headers['content-encoding'], res.headers['vary'], decoded(res).length], String(accept)).toEqual([coding, 'Accept-Encoding', 5000]);
    }
  });

  it('drops Content-Length and Accept-Ranges, weakens the ETag, merges Vary, and decodes to the exact upstream body, large ones too', async () => {
    const res = await gz('h?size=5000&h=etag:"v1"&h=accept-ranges:bytes&h=vary:Origin', { 'accept-encoding': 'gzip' });
    expect([res.headers['content-encoding'], res.headers['content-length'], res.headers['accept-ranges'], res.headers['etag'], res.headers['vary']])
      .toEqual(['gzip', undefined, undefined, 'W/"v1"', 'Origin, Accept-Encoding']);
    expect(decoded(res)).toBe(FULL);
    // An upstream's Content-Encoding: identity (or empty) is not a coding: one Content-Encoding goes out, the gateway's.
    for (const ce of ['identity', '']) {
      const res = await gz(`ident?size=5000&h=content-encoding:${ce}`, { 'accept-encoding': 'gzip' });
      expect([res.headers['content-encoding'], decoded(res)], ce).toEqual(['gzip', FULL]);
    }
    const once = await gz('h?size=5000&h=vary:accept-encoding', { 'accept-encoding': 'gzip' });
    expect(once.headers['vary']).toBe('accept-encoding');
    for (const coding of ['gzip', 'br']) {
      const big = await gz('big?size=3000000', { 'accept-encoding': coding });
      expect(big.headers['content-encoding']).toBe(coding);
      const body = decoded(big);
      expect(body.length).toBe(3_000_000);
      expect(body === FULL.repeat(600), coding).toBe(true);
    }
  });

  it('leaves alone what must not be compressed: an upstream coding, no-transform, 204, 304, 206, small, images, event streams', async () => {
    const ae = { 'accept-encoding': 'gzip, br' };
    const up = await gz('pre?gz=1', ae);
    expect([up.headers['content-encoding'], up.headers['vary'], gunzipSync(up.body).toString()]).toEqual(['gzip', undefined, JSON.stringify({ method: 'GET', target: '/gz/pre?gz=1', bytes: 0 })]);
    for (const target of ['nt?size=5000&h=cache-control:no-transform', 'small?size=100', 'png?size=5000&ct=image/png', 'sse?size=5000&ct=text/event-stream']) {
      const res = await gz(target, ae);
      expect([res.headers['content-encoding'], res.headers['content-length'], res.body.length], target).toEqual([undefined, res.body.length.toString(), res.body.length]);
    }
    const clientNt = await gz('cnt?size=5000', { ...ae, 'cache-control': 'no-transform' });
    expect(clientNt.headers['content-encoding']).toBeUndefined();
    for (const status of [204, 304]) {
      const res = await gz(`s?status=${status}&h=etag:"x"`, ae);
      expect([res.status, res.headers['content-encoding'], res.body.length]).toEqual([status, undefined, 0]);
    }
    const part = await gz('part?range=1', { ...ae, range: 'bytes=10-19' });
    expect([part.status, part.headers['content-encoding'], part.headers['content-range'], part.body.toString()]).toEqual([206, undefined, 'bytes 10-19/5000', FULL.slice(10, 20)]);
  });

  it('answers a client holding the compressed representation (If-None-Match W/"x") with a 304 carrying W/"x" and Vary, as its 200 did', async () => {
    const ae = { 'accept-encoding': 'gzip' };
    const held = await gz('nm?status=304&h=etag:"x"', { ...ae, 'if-none-match': 'W/"x"' });
    expect([held.status, held.headers['etag'], held.headers['vary']]).toEqual([304, 'W/"x"', 'Accept-Encoding']);
    const both = await gz('nm?status=304&h=etag:"x"', { ...ae, 'if-none-match': '"y", W/"x"' });
    expect(both.headers['etag']).toBe('W/"x"');
    // A client holding the identity one, or another tag: the upstream's 304 as it is.
    for (const inm of ['"x"', 'W/"xy"', undefined]) {
      const res = await gz('nm?status=304&h=etag:"x"', inm === undefined ? ae : { ...ae, 'if-none-match': inm });
      expect([res.status, res.headers['etag'], res.headers['vary']], String(inm)).toEqual([304, '"x"', undefined]);
    }
  });

  it('gives a HEAD the head its GET would get, with no body', async () => {
    const res = await gz('head?size=5000', { 'accept-encoding': 'gzip' }, 'HEAD');
    expect([res.status, res.headers['content-encoding'], res.headers['vary'], res.headers['content-length'], res.body.length]).toEqual([200, 'gzip', 'Accept-Encoding', undefined, 0]);
  });
});

describe('Range', () => {
  it('passes Range and If-Range to the upstream and relays its 206 with Content-Range, with and without the cache', async () => {
    for (const target of ['/api/range?range=1', '/cached/range?range=1&h=cache-control:max-age=60']) {
      const res = await get(target, { range: 'bytes=100-199', 'if-range': '"v1"' });
      expect([res.status, res.headers['content-range'], res.body.toString()], target).toEqual([206, 'bytes 100-199/5000', FULL.slice(100, 200)]);
      expect(seenAt(target).map((s) => [s.headers.range, s.headers['if-range']]), target).toEqual([['bytes=100-199', '"v1"']]);
    }
    // A 206 is not stored: the next ranged request goes upstream again.
    await get('/cached/range?range=1&h=cache-control:max-age=60', { range: 'bytes=0-9' });
    expect(seenAt('/cached/range?range=1&h=cache-control:max-age=60')).toHaveLength(2);
  });
});
