import { randomUUID } from 'node:crypto';
import { Observable } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { getHeader } from '../../lib/headers.ts';
import { createRedisClient, type RedisClient } from '../../lib/resources/redis-client.ts';
import { cache } from '../../lib/stages/cache/cache.ts';
import type { CacheEntry, CacheRecord, CacheStore } from '../../lib/stages/cache/entry.ts';
import { CacheTable } from '../../lib/stages/cache/table.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { RedisCacheStore } from '../../lib/stages/cache/redis-store.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { redisUrl } from '../support/redis.ts';
import { gatewayRequest, respond } from '../support/request.ts';

/**
 * RFC 9111 §4.4: a POST, PUT, PATCH or DELETE that gets a non-error answer
 * invalidates what the cache holds for its URL, every Vary variant
 * included, in the memory store and in Redis (a real redis-server).
 */

const url = redisUrl();

function request(over: Partial<GatewayRequest> = {}, headers: Record<string, string> = {}): GatewayRequest {
  return gatewayRequest({ path: '/items', query: 'a=1&b=2', headers: { host: 'api.test', ...headers }, ...over });
}

/** The upstream: GETs get `<n> <accept-language>` with max-age=60 (and Vary when `vary`); unsafe methods get `status`. */
function upstream(vary: boolean) {
  const fake = {
    calls: 0,
    status: 200,
    handler: ((req: GatewayRequest) => new Observable<GatewayResponse>((s) => {
      fake.calls++;
      const headers = ['cache-control', 'max-age=60', ...(vary ? ['vary', 'accept-language'] : [])];
      const status = req.method === 'GET' || req.method === 'HEAD' ? 200 : fake.status;
      s.next({ status, headers, body: BufferedBody.of(`${fake.calls} ${req.headers['accept-language'] ?? '-'}`) });
      s.complete();
    })) as Handler,
  };
  return fake;
}

/** A store whose operations the test can wait for (the cache does not wait for writes, nor for invalidation). */
function tracked(store: CacheStore): CacheStore & { settled(): Promise<void> } {
  const pending: unknown[] = [];
  const track = <T>(v: T): T => {
    pending.push(v);
    return v;
  };
  return {
    copiesBodies: store.copiesBodies === true,
    get: (key) => track(store.get(key)),
    set: (key: string, record: CacheRecord, ttl: number) => track(store.set(key, record, ttl)),
    delete: (key: string) => track(store.delete!(key)),
    async settled() {
      while (pending.length > 0) await Promise.allSettled(pending.splice(0));
    },
  };
}

async function ready(c: RedisClient): Promise<void> {
  if (c.status !== 'ready') await new Promise((r) => c.once('ready', r));
}

const clients: RedisClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.disconnect();
});

/** The cache's clock: one millisecond passes per request, so what came first is always earlier. */
let t = 1_700_000_000_000;
const clock = { now: () => t };

const stores: Array<[string, () => Promise<CacheStore> | CacheStore, boolean]> = [
  ['memory', () => new MemoryCacheStore({ clock }), false],
  ['redis', async () => {
    const client = createRedisClient(url);
    clients.push(client);
    await ready(client);
    return new RedisCacheStore(client, { keyPrefix: `rxgate:test:${randomUUID()}:` });
  }, !url],
];

for (const [name, makeStore, skip] of stores) {
  describe.skipIf(skip)(`invalidation after unsafe methods (${name} store)`, () => {
    async function gateway(vary: boolean) {
      const store = tracked(await makeStore());
      const up = upstream(vary);
      const handler = cache({ store, clock })(up.handler);
      const send = async (req: GatewayRequest = request()) => {
        t += 1;
        const { response, body } = await respond(handler, req);
        await store.settled();
        return { status: response.status, body: body?.toString() ?? '', xCache: getHeader(response.headers, 'x-cache') };
      };
      return { up, send };
    }

    it('a POST, PUT, PATCH or DELETE answered 2xx or 3xx deletes the stored GET of its URL', async () => {
      const { up, send } = await gateway(false);
      for (const [method, status] of [['POST', 200], ['PUT', 204], ['PATCH', 200], ['DELETE', 303]] as const) {
        await send();
        expect((await send()).xCache, method).toBe('HIT');
        up.status = status;
        // the query in another order names the same resource
        expect((await send(request({ method, query: 'b=2&a=1' }))).status).toBe(status);
        expect((await send()).xCache, method).toBe('MISS');
      }
    });

    it('an error answer, a safe method or another URL invalidates nothing', async () => {
      const { up, send } = await gateway(false);
      await send();
      for (const status of [400, 404, 500]) {
        up.status = status;
        await send(request({ method: 'POST' }));
      }
      await send(request({ method: 'OPTIONS' }));
      up.status = 200;
      await send(request({ method: 'POST', query: 'a=1' }));
      expect((await send()).xCache).toBe('HIT');
    });

    it('hides every Vary variant, and a variant stored again does not bring back the others', async () => {
      const { send } = await gateway(true);
      const en = request({}, { 'accept-language': 'en' });
      const fr = request({}, { 'accept-language': 'fr' });
      await send(en);
      await send(fr);
      expect([(await send(en)).xCache, (await send(fr)).xCache]).toEqual(['HIT', 'HIT']);
      await send(request({ method: 'PUT' }, { 'accept-language': 'en' }));
      const enAfter = await send(en);
      expect(enAfter.xCache).toBe('MISS');
      expect((await send(en)).xCache).toBe('HIT');
      const frAfter = await send(fr);
      expect([frAfter.xCache, frAfter.body]).toEqual(['MISS', expect.stringMatching(/ fr$/)]);
      expect((await send(fr)).body).toBe(frAfter.body);
    });

    it('keeps the mark when a variant\'s vary record is written in the same round trip as an invalidation', async () => {
      const store = tracked(await makeStore());
      const table = new CacheTable(store, (err) => { throw err; });
      const base = 'GET http://api.test/items';
      const lang = (l: string) => request({}, { 'accept-language': l });
      const entry = (at: number): CacheEntry => ({
        kind: 'entry', status: 200, statusText: undefined, headers: ['vary', 'accept-language'], body: BufferedBody.of('x'), vary: ['accept-language'],
        storedAt: at, initialAge: 0, freshUntil: at + 60_000, staleWhileRevalidate: 0, staleIfError: 0,
      });
      t += 1;
      table.write(base, lang('fr'), entry(t), t);
      await store.settled();
      t += 1;
      // the PUT's read goes first, the GET miss's read of the vary record second: its write lands last
      table.invalidate(base, lang('en'), t);
      table.write(base, lang('de'), entry(t + 1), t + 1);
      await store.settled();
      const rec = await store.get(base);
      expect(rec?.kind === 'vary' ? rec.since : undefined).toBe(t);
      expect((await table.lookup(lang('fr'), base)).entry).toBeUndefined();
      expect((await table.lookup(lang('de'), base)).entry?.storedAt).toBe(t + 1);
    });

    it.skipIf(name !== 'redis')('a vary record written over one with a later mark or until keeps them (Redis compares and sets)', async () => {
      const store = await makeStore();
      await store.set('v', { kind: 'vary', names: ['accept-language'], since: 5_000, until: 90_000 }, 60_000);
      await store.set('v', { kind: 'vary', names: ['accept-language'], since: undefined, until: 70_000 }, 40_000);
      expect(await store.get('v')).toEqual({ kind: 'vary', names: ['accept-language'], since: 5_000, until: 90_000 });
      await store.set('v', { kind: 'vary', names: ['accept-language'], since: 6_000, until: 95_000 }, 60_000);
      expect(await store.get('v')).toEqual({ kind: 'vary', names: ['accept-language'], since: 6_000, until: 95_000 });
    });
  });
}
