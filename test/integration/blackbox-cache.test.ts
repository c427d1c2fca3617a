import { connect } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { header, rawRequest, type RawResponse } from '../support/http.ts';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * The cache as an HTTP shared cache, probed black-box (notes/s12/A12-findings.md):
 * rxgate started from YAML as users start it, a real upstream, raw HTTP from
 * the client, and what nginx `proxy_cache`, Varnish, Envoy's cache filter,
 * RFC 9111, RFC 9110 and docs/cache.md say a shared cache does. Each test
 * uses paths of its own; the upstream answers each path as the test told it
 * to and records every request it got.
 */

type Answer = (req: IncomingMessage, res: ServerResponse, n: number, body: string) => void;

let runs: RxgateRuns;
let upstream: TestUpstream;
/** An upstream the test stops: `/down/*` goes to it. */
let doomed: TestUpstream;
let gw = '';
/** How each path is answered (the test's plan); the request count is passed as `n`, from 1, and the request body read whole. */
const plans = new Map<string, Answer>();
/** Every request the upstream got, by path (without the query). */
const got = new Map<string, IncomingMessage[]>();

function seen(path: string): IncomingMessage[] {
  return got.get(path) ?? [];
}

/** Answers `path` with `status`, `headers` and `body`, each time (`body` may depend on the count). */
function plan(path: string, status: number, headers: Record<string, string | string[]>, body: string | ((n: number) => string) = 'body'): void {
  plans.set(path, (_req, res, n) => {
    const text = typeof body === 'string' ? body : body(n);
    res.writeHead(status, { 'content-type': 'text/plain', ...headers });
    res.end(status === 204 || status === 304 ? undefined : text);
  });
}

/** A GET (or `method`) with extra header lines, as raw bytes on a connection of its own. */
function send(path: string, headers: Record<string, string> = {}, method = 'GET', body = ''): Promise<RawResponse> {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const length = body === '' && method === 'GET' ? '' : `content-length: ${Buffer.byteLength(body)}\r\n`;
  return rawRequest(gw, `${method} ${path} HTTP/1.1\r\nhost: cache.test\r\n${lines}${length}connection: close\r\n\r\n${body}`, { noBody: method === 'HEAD' });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** Past a `max-age=1` entry's freshness: its lifetime is counted from when its head arrived. */
const PAST_ONE_SECOND = 1100;

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    const path = new URL(req.url!, 'http://up').pathname;
    const list = got.get(path) ?? [];
    list.push(req);
    got.set(path, list);
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => {
      const answer = plans.get(path);
      if (answer === undefined) res.writeHead(200, { 'content-type': 'text/plain' }).end(`default ${list.length}`);
      else answer(req, res, list.length, body);
    });
  });
  doomed = await startUpstream((req, res) => {
    const mustRevalidate = req.url!.includes('must-revalidate');
    res.writeHead(200, { 'cache-control': mustRevalidate ? 'max-age=1, must-revalidate' : 'max-age=1' }).end('stored before the upstream went away');
  });
  runs = rxgateRuns();
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  up: { upstreams: ["${upstream.url}"], retry: false, circuitBreaker: false }
  doomed: { upstreams: ["${doomed.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /c/*, service: up, cache: { ttl: 60s } }
  - { path: /st/*, service: up, cache: { ttl: 60s, statuses: [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] } }
  - { path: /sie/*, service: up, cache: { ttl: 60s, staleIfError: 60s } }
  - { path: /swr/*, service: up, cache: { ttl: 60s, staleWhileRevalidate: 60s } }
  - { path: /small/*, service: up, cache: { ttl: 60s, maxEntrySize: 1024 } }
  - { path: /down/*, service: doomed, cache: { ttl: 60s, staleIfError: 60s } }
`)], { RXGATE_LOG_LEVEL: 'info' });
  gw = `http://127.0.0.1:${Number((await proc.logged('rxgate listening'))['port'])}`;
}, 30_000);

afterAll(async () => {
  runs?.remove();
  await upstream?.close();
  await doomed?.close();
});

/** Two GETs of `path`: the second's x-cache, and how many requests reached the upstream. */
async function twice(path: string, headers: Record<string, string> = {}): Promise<[string | undefined, number]> {
  await send(path, headers);
  const second = await send(path, headers);
  return [header(second, 'x-cache'), seen(new URL(path, 'http://x').pathname).length];
}

describe('response directives', () => {
  it('does not store no-store, private or no-cache answers (as nginx and Varnish)', async () => {
    for (const cc of ['no-store', 'private', 'no-cache', 'private="set-cookie", max-age=60', 'no-cache="x", max-age=60']) {
      const path = `/c/refuse-${encodeURIComponent(cc)}`;
      plan(path, 200, { 'cache-control': cc });
      expect([cc, ...(await twice(path))]).toEqual([cc, 'MISS', 2]);
    }
  });

  it('stores max-age and s-maxage answers, s-maxage winning for a shared cache', async () => {
    plan('/c/max-age', 200, { 'cache-control': 'max-age=60' });
    expect(await twice('/c/max-age')).toEqual(['HIT', 1]);
    plan('/c/s-maxage-wins', 200, { 'cache-control': 'max-age=0, s-maxage=60' });
    expect(await twice('/c/s-maxage-wins')).toEqual(['HIT', 1]);
    plan('/c/s-maxage-zero', 200, { 'cache-control': 'max-age=60, s-maxage=0' });
    expect(await twice('/c/s-maxage-zero')).toEqual(['MISS', 2]);
  });

  it('takes the lifetime from Expires minus Date, and an invalid or past Expires as expired', async () => {
    const now = Date.now();
    plan('/c/expires', 200, { date: new Date(now).toUTCString(), expires: new Date(now + 60_000).toUTCString() });
    expect(await twice('/c/expires')).toEqual(['HIT', 1]);
    plan('/c/expires-zero', 200, { expires: '0' });
    expect(await twice('/c/expires-zero')).toEqual(['MISS', 2]);
    plan('/c/expires-past', 200, { date: new Date(now).toUTCString(), expires: new Date(now - 60_000).toUTCString() });
    expect(await twice('/c/expires-past')).toEqual(['MISS', 2]);
  });

  it('stores an answer without freshness information for the route ttl (docs/cache.md)', async () => {
    plan('/c/no-freshness', 200, {});
    expect(await twice('/c/no-freshness')).toEqual(['HIT', 1]);
  });

  it('does not store an answer with Set-Cookie (nginx does not by default), nor one with Vary: *', async () => {
    plan('/c/set-cookie', 200, { 'cache-control': 'max-age=60', 'set-cookie': 'sid=1' });
    expect(await twice('/c/set-cookie')).toEqual(['MISS', 2]);
    plan('/c/vary-star', 200, { 'cache-control': 'max-age=60', vary: '*' });
    expect(await twice('/c/vary-star')).toEqual(['MISS', 2]);
  });

  it('keeps a variant per value of the header Vary names', async () => {
    plan('/c/vary', 200, { 'cache-control': 'max-age=60', vary: 'accept-language' }, (n) => `variant ${n}`);
    const en1 = await send('/c/vary', { 'accept-language': 'en' });
    const fr1 = await send('/c/vary', { 'accept-language': 'fr' });
    const en2 = await send('/c/vary', { 'accept-language': 'en' });
    const fr2 = await send('/c/vary', { 'accept-language': 'fr' });
    expect([en1, fr1, en2, fr2].map((r) => [header(r, 'x-cache'), r.body.toString()])).toEqual([
      ['MISS', 'variant 1'], ['MISS', 'variant 2'], ['HIT', 'variant 1'], ['HIT', 'variant 2'],
    ]);
  });

  it('stores only the statuses listed (default 200); a listed status is stored, 500 and 302 never unless listed', async () => {
    plan('/c/404-default', 404, { 'cache-control': 'max-age=60' });
    expect(await twice('/c/404-default')).toEqual(['MISS', 2]);
    for (const status of [203, 204, 300, 301, 308, 404, 405, 410, 414, 501]) {
      const path = `/st/status-${status}`;
      plan(path, status, { 'cache-control': 'max-age=60', ...(status >= 300 && status < 400 ? { location: '/elsewhere' } : {}) });
      const first = await send(path);
      const second = await send(path);
      expect([status, second.status, header(second, 'x-cache'), seen(path).length, second.body.toString()]).toEqual([status, status, 'HIT', 1, first.body.toString()]);
    }
    for (const status of [500, 302]) {
      const path = `/st/status-${status}`;
      plan(path, status, { 'cache-control': 'max-age=60', location: '/elsewhere' });
      expect([status, ...(await twice(path))]).toEqual([status, 'MISS', 2]);
    }
  });

  it('serves nothing stale past must-revalidate or proxy-revalidate, not even on an upstream error', async () => {
    for (const cc of ['max-age=1, must-revalidate', 'max-age=1, proxy-revalidate']) {
      const path = `/sie/${cc.includes('must') ? 'must' : 'proxy'}-revalidate`;
      plan(path, 200, { 'cache-control': cc }, 'stored');
      expect((await send(path)).status).toBe(200);
      await sleep(PAST_ONE_SECOND);
      plan(path, 500, {}, 'upstream failed');
      const after = await send(path);
      expect([cc, after.status, header(after, 'x-cache'), after.body.toString()]).toEqual([cc, 500, 'MISS', 'upstream failed']);
    }
  });
});

describe('request directives', () => {
  it('refreshes on a client no-cache or Pragma: no-cache and stores the fresh answer', async () => {
    for (const [path, headers] of [['/c/req-no-cache', { 'cache-control': 'no-cache' }], ['/c/req-pragma', { pragma: 'no-cache' }]] as const) {
      plan(path, 200, { 'cache-control': 'max-age=60' }, (n) => `v${n}`);
      await send(path);
      const refreshed = await send(path, headers);
      const after = await send(path);
      expect([header(refreshed, 'x-cache'), refreshed.body.toString(), header(after, 'x-cache'), after.body.toString(), seen(path).length])
        .toEqual(['BYPASS', 'v2', 'HIT', 'v2', 2]);
    }
  });

  it('answers a client max-age=0 from the store, as nginx and Varnish do (docs/cache.md: ignored on a hit)', async () => {
    plan('/c/req-max-age-0', 200, { 'cache-control': 'max-age=60' });
    expect(await twice('/c/req-max-age-0', { 'cache-control': 'max-age=0' })).toEqual(['HIT', 1]);
  });

  it('neither looks up nor stores for a client no-store', async () => {
    plan('/c/req-no-store', 200, { 'cache-control': 'max-age=60' });
    const first = await send('/c/req-no-store', { 'cache-control': 'no-store' });
    const plain = await send('/c/req-no-store');
    expect([header(first, 'x-cache'), header(plain, 'x-cache'), seen('/c/req-no-store').length]).toEqual(['BYPASS', 'MISS', 2]);
  });

  it('answers only-if-cached with 504 without going upstream when nothing is stored, and from the store when it is', async () => {
    plan('/c/only-if-cached', 200, { 'cache-control': 'max-age=60' });
    const none = await send('/c/only-if-cached', { 'cache-control': 'only-if-cached' });
    expect([none.status, header(none, 'x-cache'), seen('/c/only-if-cached').length]).toEqual([504, 'MISS', 0]);
    await send('/c/only-if-cached');
    const stored = await send('/c/only-if-cached', { 'cache-control': 'only-if-cached' });
    expect([stored.status, header(stored, 'x-cache'), seen('/c/only-if-cached').length]).toEqual([200, 'HIT', 1]);
  });

  it('neither answers nor stores a GET with a body: the key does not hold it (a search API\'s query, a "fat GET" poisoning the entry; Envoy passes it too)', async () => {
    plans.set('/c/fat-get', (_req, res, n, body) => res.writeHead(200, { 'cache-control': 'max-age=60' }).end(`${n}: ${body}`));
    const fat = await send('/c/fat-get', { 'content-type': 'application/json' }, 'GET', '{"q":"poison"}');
    const plain = await send('/c/fat-get');
    const again = await send('/c/fat-get', { 'content-type': 'application/json' }, 'GET', '{"q":"other"}');
    expect([fat, plain, again].map((r) => [header(r, 'x-cache'), r.body.toString()])).toEqual([
      ['BYPASS', '1: {"q":"poison"}'], ['MISS', '2: '], ['BYPASS', '3: {"q":"other"}'],
    ]);
  });

  it('answers a request with a Cookie from the store, the Cookie not in the key, as nginx does (docs/cache.md; Varnish passes it)', async () => {
    plan('/c/cookie', 200, { 'cache-control': 'max-age=60' }, (n) => `v${n}`);
    await send('/c/cookie', { cookie: 'sid=alice' });
    const bob = await send('/c/cookie', { cookie: 'sid=bob' });
    expect([header(bob, 'x-cache'), bob.body.toString(), seen('/c/cookie').length]).toEqual(['HIT', 'v1', 1]);
  });

  it('never answers a request with Authorization from the store, nor stores its answer, even public (cacheAuthorized: false)', async () => {
    plan('/c/authorized', 200, { 'cache-control': 'public, s-maxage=60' }, (n) => `v${n}`);
    await send('/c/authorized');
    const withAuth = await send('/c/authorized', { authorization: 'Bearer someone' });
    const after = await send('/c/authorized');
    expect([header(withAuth, 'x-cache'), withAuth.body.toString(), header(after, 'x-cache'), after.body.toString()]).toEqual(['BYPASS', 'v2', 'HIT', 'v1']);
    expect(seen('/c/authorized')[1]!.headers.authorization).toBe('Bearer someone');
  });
});

describe('Age, Date and the cache status', () => {
  it('says Age from the upstream\'s Age plus the seconds held, under one Date, the gateway\'s (as nginx), and counts Age against the lifetime', async () => {
    const date = new Date(Date.now() - 3_600_000).toUTCString();
    plan('/c/age', 200, { 'cache-control': 'max-age=60', age: '5', date });
    const miss = await send('/c/age');
    const hit = await send('/c/age');
    await sleep(PAST_ONE_SECOND);
    const later = await send('/c/age');
    expect([header(miss, 'x-cache'), header(miss, 'age'), header(hit, 'x-cache'), header(later, 'x-cache')]).toEqual(['MISS', '5', 'HIT', 'HIT']);
    expect(Number(header(hit, 'age'))).toBeGreaterThanOrEqual(5);
    expect(Number(header(later, 'age'))).toBeGreaterThanOrEqual(6);
    // docs/http.md: the upstream's Date is dropped for the gateway's own, a hit's too (uWS writes it; a hit restates an Expires that gave the freshness: cache-hit-expires-held-once).
    for (const r of [miss, hit, later]) expect(r.headerLines.filter(([n]) => n === 'date').map(([, v]) => v === date)).toEqual([false]);
    plan('/c/age-past-lifetime', 200, { 'cache-control': 'max-age=60', age: '100' });
    expect(await twice('/c/age-past-lifetime')).toEqual(['MISS', 2]);
  });

  it('drops an upstream\'s own x-cache on a cached route, from the miss and from the stored entry: the gateway\'s is the one x-cache line', async () => {
    plan('/c/upstream-x-cache', 200, { 'cache-control': 'max-age=60', 'x-cache': 'HIT from cdn' });
    const answers = [await send('/c/upstream-x-cache'), await send('/c/upstream-x-cache')];
    expect(answers.map((r) => r.headerLines.filter(([n]) => n === 'x-cache').map(([, v]) => v))).toEqual([['MISS'], ['HIT']]);
  });

  it('says what it did in x-cache on every answer of a cached route, and sends no RFC 9211 Cache-Status (not implemented)', async () => {
    plan('/c/status', 200, { 'cache-control': 'max-age=60' });
    const answers = [await send('/c/status'), await send('/c/status'), await send('/c/status', { 'cache-control': 'no-cache' })];
    expect(answers.map((r) => [header(r, 'x-cache'), header(r, 'cache-status')])).toEqual([['MISS', undefined], ['HIT', undefined], ['BYPASS', undefined]]);
  });
});

describe('conditional requests, HEAD and methods', () => {
  it('answers If-None-Match and If-Modified-Since from a stored entry with a 304, its validators and no body', async () => {
    const lastModified = new Date(Date.now() - 3_600_000).toUTCString();
    plan('/c/conditional', 200, { 'cache-control': 'max-age=60', etag: '"v1"', 'last-modified': lastModified }, 'stored body');
    await send('/c/conditional');
    const inm = await send('/c/conditional', { 'if-none-match': 'W/"v1"' });
    const ims = await send('/c/conditional', { 'if-modified-since': new Date().toUTCString() });
    for (const r of [inm, ims]) {
      expect([r.status, header(r, 'etag'), header(r, 'cache-control'), header(r, 'x-cache'), r.body.length]).toEqual([304, '"v1"', 'max-age=60', 'HIT', 0]);
      expect(header(r, 'age')).toBeDefined();
    }
    expect(seen('/c/conditional').length).toBe(1);
  });

  it('answers a HEAD from the stored GET: its headers and Content-Length, no body', async () => {
    plan('/c/head', 200, { 'cache-control': 'max-age=60' }, 'twelve bytes');
    await send('/c/head');
    const head = await send('/c/head', {}, 'HEAD');
    expect([head.status, header(head, 'x-cache'), header(head, 'content-length'), head.body.length, seen('/c/head').length]).toEqual([200, 'HIT', '12', 0, 1]);
  });

  it('invalidates the URL on a non-error answer to POST, PUT, DELETE or PATCH, not on an error', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const path = `/c/unsafe-${method}`;
      plan(path, 200, { 'cache-control': 'max-age=60' });
      await send(path);
      const unsafe = await send(path, {}, method, 'x');
      const after = await send(path);
      expect([method, header(unsafe, 'x-cache'), header(after, 'x-cache'), seen(path).length]).toEqual([method, 'BYPASS', 'MISS', 3]);
    }
    plan('/c/unsafe-error', 200, { 'cache-control': 'max-age=60' });
    await send('/c/unsafe-error');
    plans.set('/c/unsafe-error', (req, res) => {
      if (req.method === 'POST') res.writeHead(500).end('no');
      else res.writeHead(200, { 'cache-control': 'max-age=60' }).end('body');
    });
    await send('/c/unsafe-error', {}, 'POST', 'x');
    expect(header(await send('/c/unsafe-error'), 'x-cache')).toBe('HIT');
  });

  it('never stores an answer to OPTIONS or POST', async () => {
    plan('/c/options', 200, { 'cache-control': 'max-age=60' });
    for (const method of ['OPTIONS', 'POST']) {
      await send('/c/options', {}, method);
      const second = await send('/c/options', {}, method);
      expect([method, header(second, 'x-cache')]).toEqual([method, 'BYPASS']);
    }
    expect(seen('/c/options').length).toBe(4);
  });

  it('keys the query with its parameters sorted: ?b=2&a=1 and ?a=1&b=2 are one entry', async () => {
    plan('/c/query', 200, { 'cache-control': 'max-age=60' });
    await send('/c/query?b=2&a=1');
    expect(header(await send('/c/query?a=1&b=2'), 'x-cache')).toBe('HIT');
    expect(seen('/c/query').length).toBe(1);
  });
});

describe('revalidation and stale answers', () => {
  it('revalidates an expired entry with its ETag: the upstream\'s 304 freshens it and the client gets a 200 with the stored body and the new headers', async () => {
    plans.set('/c/revalidate', (req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1', etag: '"r1"', 'x-version': '1' }).end('stored once');
      else res.writeHead(304, { 'cache-control': 'max-age=60', etag: '"r1"', 'x-version': String(n) }).end();
    });
    await send('/c/revalidate');
    await sleep(PAST_ONE_SECOND);
    const revalidated = await send('/c/revalidate');
    const hit = await send('/c/revalidate');
    expect(seen('/c/revalidate')[1]!.headers['if-none-match']).toBe('"r1"');
    expect([revalidated.status, header(revalidated, 'x-cache'), revalidated.body.toString(), header(revalidated, 'x-version'), header(revalidated, 'cache-control')])
      .toEqual([200, 'REVALIDATED', 'stored once', '2', 'max-age=60']);
    expect([header(hit, 'x-cache'), hit.body.toString(), header(hit, 'x-version'), seen('/c/revalidate').length]).toEqual(['HIT', 'stored once', '2', 2]);
  });

  it('revalidates an entry that has only Last-Modified with If-Modified-Since', async () => {
    const lastModified = new Date(Date.now() - 60_000).toUTCString();
    plans.set('/c/revalidate-lm', (_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1', 'last-modified': lastModified }).end('dated');
      else res.writeHead(304, { 'cache-control': 'max-age=60', 'last-modified': lastModified }).end();
    });
    await send('/c/revalidate-lm');
    await sleep(PAST_ONE_SECOND);
    const revalidated = await send('/c/revalidate-lm');
    expect(seen('/c/revalidate-lm')[1]!.headers['if-modified-since']).toBe(lastModified);
    expect([revalidated.status, header(revalidated, 'x-cache'), revalidated.body.toString()]).toEqual([200, 'REVALIDATED', 'dated']);
  });

  it('serves a stale entry under stale-while-revalidate at once and refreshes it in the background', async () => {
    plan('/swr/page', 200, { 'cache-control': 'max-age=1' }, (n) => `v${n}`);
    await send('/swr/page');
    await sleep(PAST_ONE_SECOND);
    const stale = await send('/swr/page');
    expect([header(stale, 'x-cache'), stale.body.toString()]).toEqual(['STALE', 'v1']);
    await until(() => seen('/swr/page').length === 2);
    await until(async () => (await send('/swr/page')).body.toString() === 'v2');
    expect(seen('/swr/page').length).toBe(2);
  });

  it('serves a stale entry under stale-if-error when the upstream answers 5xx, and passes a 4xx on; s-maxage keeps the route\'s window, as nginx\'s proxy_cache_use_stale (docs/cache.md: RFC 9111 has it imply proxy-revalidate)', async () => {
    for (const cc of ['max-age=1', 's-maxage=1']) {
      const path = `/sie/page-${cc.slice(0, cc.indexOf('='))}`;
      plan(path, 200, { 'cache-control': cc }, 'stored');
      await send(path);
      await sleep(PAST_ONE_SECOND);
      plan(path, 503, {}, 'down');
      const stale = await send(path);
      plan(path, 404, {}, 'gone');
      const gone = await send(path);
      expect([cc, stale.status, header(stale, 'x-cache'), stale.body.toString(), gone.status, gone.body.toString()]).toEqual([cc, 200, 'STALE', 'stored', 404, 'gone']);
    }
  });
  it('answers from the stale entry under stale-if-error when the upstream is gone (refused connections), but not past must-revalidate', async () => {
    await send('/down/page');
    await send('/down/must-revalidate');
    await sleep(PAST_ONE_SECOND);
    await doomed.close();
    const stale = await send('/down/page');
    const refused = await send('/down/must-revalidate');
    expect([stale.status, header(stale, 'x-cache'), stale.body.toString()]).toEqual([200, 'STALE', 'stored before the upstream went away']);
    // The gateway's own error answer says the cache's verdict too (docs/cache.md; A12's F14).
    expect([refused.status, JSON.parse(refused.body.toString()).error.code, header(refused, 'x-cache')]).toEqual([502, 'BAD_GATEWAY', 'MISS']);
  });
});

describe('a refresh that may not be stored', () => {
  it('ends a stale-while-revalidate entry when its background refresh is answered no-store: no STALE copy for the whole window, no refresh per hit', async () => {
    plans.set('/swr/refresh-no-store', (_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1, stale-while-revalidate=60' }).end('old');
      else res.writeHead(200, { 'cache-control': 'no-store' }).end(`new ${n}`);
    });
    await send('/swr/refresh-no-store');
    await sleep(PAST_ONE_SECOND);
    const stale = await send('/swr/refresh-no-store');
    await until(() => seen('/swr/refresh-no-store').length === 2);
    // The refresh's answer is over when the upstream has sent it; the entry is gone once the next GET misses.
    await until(async () => header(await send('/swr/refresh-no-store'), 'x-cache') === 'MISS');
    const after = await send('/swr/refresh-no-store');
    expect([header(stale, 'x-cache'), stale.body.toString(), header(after, 'x-cache'), after.body.toString().startsWith('new')]).toEqual(['STALE', 'old', 'MISS', true]);
  });

  it('keeps a stale-while-revalidate entry when its background refresh fails with a 5xx, to be tried again', async () => {
    plans.set('/swr/refresh-fails', (_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1, stale-while-revalidate=60' }).end('old');
      else res.writeHead(503).end('down');
    });
    await send('/swr/refresh-fails');
    await sleep(PAST_ONE_SECOND);
    await send('/swr/refresh-fails');
    await until(() => seen('/swr/refresh-fails').length === 2);
    await until(async () => (await send('/swr/refresh-fails')).body.toString() === 'old' && seen('/swr/refresh-fails').length >= 3);
    const again = await send('/swr/refresh-fails');
    expect([header(again, 'x-cache'), again.body.toString()]).toEqual(['STALE', 'old']);
  });

  it('deletes an expired entry when the request that found it is answered no-store: a later 5xx inside stale-if-error is not answered with it', async () => {
    plans.set('/sie/answered-no-store', (_req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1' }).end('old');
      else if (n === 2) res.writeHead(200, { 'cache-control': 'no-store' }).end('new');
      else res.writeHead(503).end('down');
    });
    await send('/sie/answered-no-store');
    await sleep(PAST_ONE_SECOND);
    const fresh = await send('/sie/answered-no-store');
    const failed = await send('/sie/answered-no-store');
    expect([fresh.body.toString(), header(fresh, 'x-cache'), failed.status, header(failed, 'x-cache'), failed.body.toString()]).toEqual(['new', 'MISS', 503, 'MISS', 'down']);
  });
});

describe('sizes and aborts', () => {
  it('stores a body at maxEntrySize and streams a larger one whole without storing it, with Content-Length or chunked', async () => {
    plan('/small/at-limit', 200, { 'cache-control': 'max-age=60' }, 'a'.repeat(1024));
    expect(await twice('/small/at-limit')).toEqual(['HIT', 1]);
    plan('/small/over-limit', 200, { 'cache-control': 'max-age=60' }, 'b'.repeat(1025));
    await send('/small/over-limit');
    const over = await send('/small/over-limit');
    expect([header(over, 'x-cache'), over.body.length, seen('/small/over-limit').length]).toEqual(['MISS', 1025, 2]);
    plans.set('/small/chunked', (_req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.write('c'.repeat(800));
      setTimeout(() => res.end('c'.repeat(800)), 20);
    });
    await send('/small/chunked');
    const chunked = await send('/small/chunked');
    expect([header(chunked, 'x-cache'), chunked.chunked, chunked.body.length, seen('/small/chunked').length]).toEqual(['MISS', true, 1600, 2]);
  });

  it('stores nothing of a miss whose client went away before its body ended when nobody waits; with a request waiting on it, reads on and answers that one from the entry', async () => {
    const releases: Array<() => void> = [];
    plans.set('/c/abort', (_req, res, n) => {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.write(`first half ${n}, `);
      releases.push(() => res.end('second half'));
    });
    plans.set('/c/abort-alone', (_req, res, n) => {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.write(`first half ${n}, `);
      if (n === 1) releases.push(() => res.end('second half'));
      else res.end('second half');
    });
    const { hostname, port } = new URL(gw);
    const leave = async (path: string): Promise<void> => {
      const socket = connect(Number(port), hostname);
      socket.write(`GET ${path} HTTP/1.1\r\nhost: cache.test\r\n\r\n`);
      await new Promise<void>((r) => socket.once('data', () => r()));
      if (path === '/c/abort') waiting = send(path); // joins the leader, whose head has come
      await sleep(100);
      socket.destroy();
      await sleep(100);
    };
    let waiting: Promise<RawResponse> | null = null;
    // Nobody waits: the exchange is cancelled with its client, as any other, and nothing is stored.
    await leave('/c/abort-alone');
    releases.pop()!();
    const alone = await send('/c/abort-alone');
    expect([header(alone, 'x-cache'), alone.body.toString(), seen('/c/abort-alone').length]).toEqual(['MISS', 'first half 2, second half', 2]);
    // A request waits: the upstream is read on without the client (nginx reads on what it caches), and the waiter is a HIT.
    await leave('/c/abort');
    releases.pop()!();
    const waited = await waiting!;
    const next = await send('/c/abort');
    expect([header(waited, 'x-cache'), waited.body.toString(), header(next, 'x-cache'), next.body.toString(), seen('/c/abort').length])
      .toEqual(['HIT', 'first half 1, second half', 'HIT', 'first half 1, second half', 1]);
  });
});
