import type { IncomingMessage, ServerResponse } from 'node:http';
import { VirtualTimeScheduler } from 'rxjs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Resources } from '../../lib/resources/registry.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/index.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * Review RA (M1, M2) of 1871508 and 36c6916: what deleting an expired entry
 * superseded by an answer that may not be stored removes. Not a Range
 * request's 206 or a 304 to the client's own validators (neither says
 * anything about the stored entry), and never more than the entry the
 * request found: not a response stored meanwhile, not the URL's vary record
 * and its invalidation mark. A YAML gateway on virtual time (entries expire
 * when the test moves the clock); the upstream answers when the test says.
 */

type Answer = (req: IncomingMessage, res: ServerResponse, n: number) => void;
const plans = new Map<string, Answer>();
const counts = new Map<string, number>();
const scheduler = new VirtualTimeScheduler();
const runtime = virtualRuntime(scheduler);
/** Called when the gateway deletes from its cache (the background refresh's answer acted on). */
let deleted: (() => void) | null = null;
/** The routes' memory store (the one the cache stage takes from the registry, by its key), telling the test of each delete. */
class WatchedStore extends MemoryCacheStore {
  override delete(key: string): void {
    super.delete(key);
    deleted?.();
  }

  override deleteIf(key: string, storedAt: number): void {
    super.deleteIf(key, storedAt);
    deleted?.();
  }
}
let up: TestUpstream;
let gw: Awaited<ReturnType<typeof startGatewayFromYaml>>;

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    const n = (counts.get(path) ?? 0) + 1;
    counts.set(path, n);
    plans.get(path)!(req, res, n);
  });
  const resources = new Resources();
  resources.get(`cache:memory:${64 * 1024 * 1024}`, () => new WatchedStore({ maxBytes: 64 * 1024 * 1024, runtime }));
  gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false, timeout: 1h }
routes:
  - { path: /sie/*, service: api, cache: { ttl: 60s, staleIfError: 60s } }
  - { path: /swr/*, service: api, cache: { ttl: 60s, staleWhileRevalidate: 60s } }
  - { path: /keep/*, service: api, cache: { ttl: 60s } }
`, defaultPipeline, process.env, { runtime, resources });
});
afterAll(async () => { await gw?.close(); await up?.close(); });

/** Moves the virtual clock (the cache's) on by `ms`. */
function later(ms: number): void {
  const to = scheduler.now() + ms;
  scheduler.schedule(() => {}, ms);
  scheduler.maxFrames = to;
  scheduler.flush();
}

async function get(path: string, headers: Record<string, string> = {}) {
  const r = await request(`${gw.url}${path}`, { headers });
  return `${r.statusCode} ${r.headers['x-cache']} ${await r.body.text()}`;
}

describe('a Range request inside stale-if-error (review RA, M2)', () => {
  it('leaves the stale entry in place when answered 206: a later 5xx is still answered STALE', async () => {
    plans.set('/sie/range', (req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1' }).end('old');
      else if (req.headers.range !== undefined) res.writeHead(206, { 'content-range': 'bytes 0-0/3' }).end('o');
      else res.writeHead(503).end('down');
    });
    await get('/sie/range');
    later(2000);
    expect([await get('/sie/range', { range: 'bytes=0-0' }), await get('/sie/range')]).toEqual(['206 MISS o', '200 STALE old']);
  });

  it('leaves the stale entry in place when the client\'s own validators (kept on a Range request) are answered 304', async () => {
    plans.set('/sie/range304', (req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1', etag: '"a"' }).end('old');
      else if (n === 2 && req.headers['if-none-match'] === '"a"') res.writeHead(304, { etag: '"a"' }).end();
      else res.writeHead(503).end('down');
    });
    await get('/sie/range304');
    later(2000);
    const nm = await get('/sie/range304', { range: 'bytes=0-0', 'if-none-match': '"a"' });
    expect([nm.slice(0, 3), await get('/sie/range304')]).toEqual(['304', '200 STALE old']);
  });
});

/** Upstream answers held until the test sends them. */
const held: ServerResponse[] = [];

describe('the delete of a superseded entry races a newer one (review RA, M1)', () => {
  it('does not delete a fresh entry a no-cache request stored while the superseding answer was on its way (foreground, inside stale-if-error)', async () => {
    plans.set('/sie/race', (req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1' }).end('old');
      else if (req.headers['cache-control'] === 'no-cache') res.writeHead(200, { 'cache-control': 'max-age=60' }).end('fresh');
      else if (req.headers['x-slow'] === '1') held.push(res);
      else res.writeHead(200, { 'cache-control': 'no-store' }).end('personal');
    });
    await get('/sie/race');
    later(2000);
    const slow = get('/sie/race', { 'x-slow': '1' }); // finds 'old' inside stale-if-error, goes upstream
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const refreshed = await get('/sie/race', { 'cache-control': 'no-cache' }); // stores 'fresh'
    const before = await get('/sie/race');
    held.pop()!.writeHead(200, { 'cache-control': 'no-store' }).end('personal');
    expect([refreshed, before, await slow, await get('/sie/race')]).toEqual(['200 BYPASS fresh', '200 HIT fresh', '200 MISS personal', '200 HIT fresh']);
  });

  it('does not delete a fresh entry stored while a stale-while-revalidate refresh was on its way (background)', async () => {
    plans.set('/swr/race', (req, res, n) => {
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1, stale-while-revalidate=60' }).end('old');
      else if (req.headers['cache-control'] === 'no-cache') res.writeHead(200, { 'cache-control': 'max-age=60' }).end('fresh');
      else if (n === 2) held.push(res); // the refresh
      else res.writeHead(200, { 'cache-control': 'no-store' }).end('personal');
    });
    await get('/swr/race');
    later(2000);
    const stale = await get('/swr/race'); // answered STALE; the background refresh is held
    await vi.waitFor(() => expect(held).toHaveLength(1));
    await get('/swr/race', { 'cache-control': 'no-cache' });
    const before = await get('/swr/race');
    // Nobody answers the refresh's client: the store's delete says the gateway has acted on its answer.
    const acted = new Promise<void>((resolve) => { deleted = resolve; });
    held.pop()!.writeHead(200, { 'cache-control': 'no-store' }).end('personal');
    await acted;
    deleted = null;
    expect([stale, before, await get('/swr/race')]).toEqual(['200 STALE old', '200 HIT fresh', '200 HIT fresh']);
  });

  it('does not take the URL\'s vary record, and its invalidation mark, with it: an invalidated variant is not served again', async () => {
    let version = 'pre';
    plans.set('/sie/doc', (req, res, n) => {
      if (req.method === 'PUT') { version = 'post'; res.writeHead(200).end('ok'); return; }
      if (n === 1) { res.writeHead(200, { 'cache-control': 'max-age=1' }).end('old'); return; }
      if (req.headers['x-slow'] === '1') { held.push(res); return; }
      res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept' }).end(`${req.headers.accept}-${version}`);
    });
    await get('/sie/doc'); // 'old', no Vary, max-age=1
    later(2000);
    const slow = get('/sie/doc', { 'x-slow': '1' }); // finds 'old' inside stale-if-error
    await vi.waitFor(() => expect(held).toHaveLength(1));
    await get('/sie/doc', { accept: 'y', 'cache-control': 'no-cache' }); // the resource now varies: vary record + 'y-pre'
    const y1 = await get('/sie/doc', { accept: 'y' });
    const r = await request(`${gw.url}/sie/doc`, { method: 'PUT', headers: { accept: 'x' } }); // marks the vary record
    await r.body.text();
    held.pop()!.writeHead(200, { 'cache-control': 'no-store' }).end('personal');
    await slow; // the superseded 'old' is no longer there: nothing to delete
    const z = await get('/sie/doc', { accept: 'z' }); // rewrites the record (it keeps its mark)
    expect([y1, z, await get('/sie/doc', { accept: 'y' })]).toEqual(['200 HIT y-pre', '200 MISS z-post', '200 MISS y-post']);
  });
});

describe('an entry kept for keep (review RA, L5)', () => {
  it('is deleted when its revalidation\'s 304 is about another response and the request sent again is answered no-store', async () => {
    const sent: Array<string | undefined> = [];
    plans.set('/keep/doc', (req, res, n) => {
      sent.push(req.headers['if-none-match'] as string | undefined);
      if (n === 1) res.writeHead(200, { 'cache-control': 'max-age=1', etag: '"a"' }).end('old');
      else if (req.headers['if-none-match'] !== undefined) res.writeHead(304, { etag: '"b"' }).end();
      else res.writeHead(200, { 'cache-control': 'no-store' }).end('personal');
    });
    await get('/keep/doc');
    later(2000); // past its freshness, no stale window: kept for keep, to be revalidated
    const first = await get('/keep/doc'); // 304 about "b": sent again without validators, answered no-store
    const next = await get('/keep/doc'); // nothing kept: no validators, no second 304 round
    expect([first, next, sent]).toEqual(['200 MISS personal', '200 MISS personal', [undefined, '"a"', undefined, undefined]]);
  });
});
