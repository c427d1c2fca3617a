import fc from 'fast-check';
import { Observable } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { systemRuntime, type Runtime } from '../../lib/runtime.ts';
import { defineStage } from '../../lib/stages/define.ts';
import type { GatewayResponse } from '../../lib/types.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { rawRequest, type RawResponse } from '../support/http.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * A hit writes its entry's stored headers as lines made once per decoded
 * entry (lib/server/head-bytes.ts; docs/cache-hit.md, eighth round, part
 * 2). The bytes on the wire must stay those of the writer without them:
 * the first hit of a decoded entry goes the old way (nothing made yet), the
 * second makes the lines, later ones copy them, so the raw responses of
 * hits 1-4 must be the same bytes once the values that change per request
 * are normalised (age, date, response time, request id, the rate limit's
 * remaining and reset). For stored responses with random header names and
 * values (repeated names, bytes outside ASCII, empty values), for GET,
 * HEAD, a 304, Vary variants, an entry after its revalidation, and routes
 * whose later stages (cors, compression, rate limit, a stage that rewrites
 * a stored value in place) change the list after the cache.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/**
 * Registered stage that rewrites the first stored header's value in the
 * response's own list (what a plain-JS stage may do), a new value each
 * time: lines made once from the rewritten list would repeat the first.
 */
let rewrites = 0;
const rewrite = defineStage({
  name: 'rewriteFirst',
  options: z.strictObject({ value: z.string().default('rewritten') }),
  build: ({ value }) => (next) => (req) => new Observable<GatewayResponse>((s) => next(req).subscribe({
    next: (res) => {
      (res.headers as string[])[1] = `${value}-${++rewrites}`;
      s.next(res);
    },
    error: (e) => s.error(e),
    complete: () => s.complete(),
  })),
});

// No set-cookie: a response with one is never stored (policy.ts); head-bytes.test.ts has it at the writer. Repeated names: link, x-a.
const NAMES = ['x-a', 'x-b', 'link', 'link', 'x-long-header-name-for-v8', 'etag', 'x-empty', 'x-a', 'access-control-allow-origin'];
const stored = fc.array(fc.tuple(fc.constantFrom(...NAMES), fc.oneof(
  fc.stringMatching(/^[ -~]{0,40}$/).map((s) => s.trim()),
  fc.constantFrom('', 'caf\u00e9', '\u00ff\u00e0 bytes', 'a=1; Path=/; HttpOnly', 'W/"v1"'),
)), { minLength: 1, maxLength: 8 });
const RESPONSES = fc.sample(stored, { seed: 20261129, numRuns: 6 }).map((pairs) => pairs.flat());

/** The raw response with what changes per request replaced. */
function normalised(res: RawResponse): string {
  return res.raw
    .replace(/\r\n(age|date|x-gateway-response-time|x-request-id|ratelimit-remaining|ratelimit-reset): [^\r]*/gi, '\r\n$1: *')
    .replace(/: rewritten-\d+\r\n/, ': rewritten-*\r\n');
}

async function setup() {
  const skew = { ms: 0 };
  let reval = 0;
  const up = await startUpstream((req, res) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://x');
    const k = Number(url.pathname.split('/')[2] ?? 0) % RESPONSES.length;
    const own = RESPONSES[k]!;
    const lang = req.headers['accept-language'] ?? 'en';
    if (url.pathname.startsWith('/reval/')) {
      reval++;
      if (req.headers['if-none-match'] === '"r1"') {
        res.writeHead(304, ['etag', '"r1"', 'cache-control', 'max-age=600', 'x-version', 'two', 'x-after', 'after=\u00e9']).end();
        return;
      }
      res.writeHead(200, ['etag', '"r1"', 'cache-control', 'max-age=60', 'x-version', 'one', 'link', '</a>', 'link', '</b>', 'content-type', 'text/plain']);
      res.end('revalidated body');
      return;
    }
    const vary = url.pathname.startsWith('/vary/') ? ['vary', 'accept-language', 'content-language', lang] : [];
    res.writeHead(200, [...own, ...vary, 'cache-control', 'max-age=600', 'etag', '"k1"', 'content-type', 'text/plain; charset=utf-8']);
    res.end(`body ${k} ${lang} `.repeat(40));
  });
  cleanups.push(() => up.close());
  const runtime: Runtime = { ...systemRuntime, wallNow: () => Date.now() + skew.ms };
  const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /plain/*, service: api, cache: { ttl: 600s } }
  - { path: /vary/*, service: api, cache: { ttl: 600s } }
  - { path: /reval/*, service: api, cache: { ttl: 600s } }
  - { path: /cors/*, service: api, cache: { ttl: 600s }, cors: { origins: ["https://a.example", "https://b.example"] } }
  - { path: /gzip/*, service: api, cache: { ttl: 600s }, compression: { minSize: 10 } }
  - { path: /limited/*, service: api, cache: { ttl: 600s }, rateLimit: { limit: 1000000, window: 60s } }
  - { path: /rewrite/*, service: api, cache: { ttl: 600s }, rewriteFirst: {} }
`, defaultPipeline, process.env, { runtime, stages: [rewrite] });
  cleanups.push(() => gw.close());
  return { url: gw.url, skew, revalidations: () => reval };
}

function send(url: string, method: string, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const lines = Object.entries(headers).map(([n, v]) => `${n}: ${v}\r\n`).join('');
  return rawRequest(url, Buffer.from(`${method} ${path} HTTP/1.1\r\nhost: gw.test\r\n${lines}\r\n`, 'latin1'), { noBody: method === 'HEAD' });
}

/** A GET that stores `path`, then `n` requests: their normalised raw responses. */
async function hits(url: string, path: string, method: string, headers: Record<string, string> = {}, n = 4): Promise<string[]> {
  const miss = await send(url, 'GET', path, headers);
  expect(miss.status).toBe(200);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(normalised(await send(url, method, path, headers)));
  return out;
}

function expectAllSame(raw: string[], xCache = 'HIT'): void {
  expect(raw[0]).toContain(`\r\nx-cache: ${xCache}\r\n`);
  for (const r of raw.slice(1)) expect(r).toBe(raw[0]);
}

describe('a hit\'s stored headers written as bytes made once per entry', () => {
  it('sends the same bytes on every GET and HEAD hit of random stored responses', async () => {
    const gw = await setup();
    for (let k = 0; k < RESPONSES.length; k++) {
      const get = await hits(gw.url, `/plain/${k}/get`, 'GET');
      expectAllSame(get);
      // The stored headers in their order, repeated names and bytes outside ASCII as they came.
      const pairs = RESPONSES[k]!;
      let at = 0;
      for (let i = 0; i < pairs.length; i += 2) {
        const line = Buffer.from(`\r\n${pairs[i]!}: ${pairs[i + 1]!}`, 'latin1').toString('latin1');
        at = get[0]!.indexOf(line, at);
        expect(at, `${pairs[i]!} in ${k}`).toBeGreaterThan(0);
      }
      const head = await hits(gw.url, `/plain/${k}/head`, 'HEAD');
      expectAllSame(head);
      // A HEAD's content-length is written by the edge, in lower case after the others (as before).
      const noLength = (raw: string): string => raw.replace(/\r\ncontent-length: \d+/i, '');
      expect(noLength(head[0]!)).toBe(noLength(get[0]!.slice(0, get[0]!.indexOf('\r\n\r\n') + 4)));
    }
  });

  it('answers a conditional hit 304 with the same bytes before and after the entry\'s lines are made', async () => {
    const gw = await setup();
    const before = normalised(await (async () => {
      await send(gw.url, 'GET', '/plain/1/cond');
      return send(gw.url, 'GET', '/plain/1/cond', { 'if-none-match': '"k1"' });
    })());
    const after = await hits(gw.url, '/plain/1/cond', 'GET', {}, 3);
    expectAllSame(after);
    const again = normalised(await send(gw.url, 'GET', '/plain/1/cond', { 'if-none-match': '"k1"' }));
    expect(before).toMatch(/^HTTP\/1\.1 304 /);
    expect(again).toBe(before);
  });

  it('keeps each Vary variant\'s own bytes', async () => {
    const gw = await setup();
    for (const lang of ['en', 'fr', 'de']) {
      const raw = await hits(gw.url, '/vary/2/v', 'GET', { 'accept-language': lang });
      expectAllSame(raw);
      expect(raw[0]).toContain(`\r\ncontent-language: ${lang}\r\n`);
    }
  });

  it('sends a revalidated entry\'s new headers on every hit after its revalidation', async () => {
    const gw = await setup();
    const old = await hits(gw.url, '/reval/0/r', 'GET');
    expectAllSame(old);
    expect(old[0]).toContain('\r\nx-version: one\r\n');
    gw.skew.ms = 120_000;
    const revalidated = normalised(await send(gw.url, 'GET', '/reval/0/r'));
    expect(gw.revalidations()).toBe(2);
    expect(revalidated).toContain('\r\nx-cache: REVALIDATED\r\n');
    const after: string[] = [];
    for (let i = 0; i < 4; i++) after.push(normalised(await send(gw.url, 'GET', '/reval/0/r')));
    expectAllSame(after);
    expect(after[0]).toContain('\r\nx-version: two\r\n');
    expect(after[0]).toContain('\r\nx-after: after=\u00e9\r\n');
    expect(after[0]).not.toContain('x-version: one');
    expect(after[0]).toBe(revalidated.replace('x-cache: REVALIDATED', 'x-cache: HIT'));
  });

  it('sends what later stages made of the list (cors, compression, rate limit, a rewrite in place)', async () => {
    const gw = await setup();
    for (let k = 0; k < RESPONSES.length; k++) {
      for (const origin of ['https://a.example', 'https://b.example']) {
        const cors = await hits(gw.url, `/cors/${k}/c`, 'GET', { origin });
        expectAllSame(cors);
        expect(cors[0]).toContain(`\r\naccess-control-allow-origin: ${origin}\r\n`);
      }
      const gzip = await hits(gw.url, `/gzip/${k}/z`, 'GET', { 'accept-encoding': 'gzip' });
      expectAllSame(gzip);
      expect(gzip[0]).toContain('\r\ncontent-encoding: gzip\r\n');
      const limited = await hits(gw.url, `/limited/${k}/l`, 'GET');
      expectAllSame(limited);
      expect(limited[0]).toContain('\r\nratelimit-limit: 1000000\r\n');
      const from = rewrites;
      const raw: string[] = [];
      await send(gw.url, 'GET', `/rewrite/${k}/w`);
      for (let i = 1; i <= 4; i++) {
        raw.push((await send(gw.url, 'GET', `/rewrite/${k}/w`)).raw);
        expect(raw.at(-1)).toContain(`\r\n${RESPONSES[k]![0]!}: rewritten-${from + 1 + i}\r\n`);
      }
      expectAllSame(raw.map((r) => normalised({ raw: r } as RawResponse)));
    }
  });
});
