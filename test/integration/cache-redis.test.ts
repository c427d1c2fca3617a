import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Observable } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheRecord, CacheStore } from '../../lib/stages/cache/entry.ts';
import { getHeader } from '../../lib/headers.ts';
import { cache } from '../../lib/stages/cache/cache.ts';
import { RedisCacheStore } from '../../lib/stages/cache/redis-store.ts';
import { createRedisClient, type RedisClient } from '../../lib/resources/redis-client.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../../lib/types.ts';
import { freePort } from '../support/global-setup.ts';
import { startRedisServer, stopRedisServer } from '../support/redis-server.ts';
import { redisUrl } from '../support/redis.ts';
import { gatewayRequest, respond } from '../support/request.ts';

const url = redisUrl();

function request(headers: Record<string, string> = {}): GatewayRequest {
  return gatewayRequest({ id: 'r', path: '/catalog', query: 'page=1', headers: { host: 'shop.test', ...headers } });
}

function upstream(name: string) {
  const fake = {
    calls: 0,
    handler: ((req: GatewayRequest) =>
      new Observable<GatewayResponse>((s) => {
        fake.calls++;
        s.next({
          status: 200,
          headers: ['content-type', 'text/plain', 'vary', 'accept-language', 'cache-control', 'max-age=60'],
          body: BufferedBody.of(`${name}:${req.headers['accept-language'] ?? '-'}`),
        });
        s.complete();
      })) as Handler,
  };
  return fake;
}

async function send(h: Handler, req: GatewayRequest = request()): Promise<{ status: number; body: string; xCache: string | undefined }> {
  const { response, body } = await respond(h, req);
  return { status: response.status, body: body?.toString() ?? '', xCache: getHeader(response.headers, 'x-cache') };
}

/** A store whose writes the test can wait for (the operator does not wait for them). */
function tracked(store: CacheStore): CacheStore & { flushed(): Promise<unknown> } {
  const pending: Array<PromiseLike<void> | void> = [];
  return {
    get: (key) => store.get(key),
    set: (key: string, record: CacheRecord, ttl: number) => {
      const p = store.set(key, record, ttl);
      pending.push(p);
      return p;
    },
    flushed: () => Promise.allSettled(pending.splice(0)),
  };
}

/** With no offline queue, commands sent before the connection is up fail (as bypasses); tests start once it is. */
async function ready(...cs: RedisClient[]): Promise<void> {
  await Promise.all(cs.map((c) => (c.status === 'ready' ? undefined : new Promise((r) => c.once('ready', r)))));
}

describe.skipIf(!url)('cache over Redis', () => {
  const clients: RedisClient[] = [];
  let own: ChildProcess | undefined;

  afterEach(async () => {
    for (const c of clients.splice(0)) c.disconnect();
    if (own !== undefined) await stopRedisServer(own, 'SIGKILL');
    own = undefined;
  });

  it('serves a response cached by one gateway as a HIT on another sharing the Redis', async () => {
    const keyPrefix = `rxgate:test:${randomUUID()}:`;
    const [a, b] = [createRedisClient(url), createRedisClient(url)];
    clients.push(a, b);
    await ready(a, b);
    const storeA = tracked(new RedisCacheStore(a, { keyPrefix }));
    const storeB = tracked(new RedisCacheStore(b, { keyPrefix }));
    const upA = upstream('A');
    const upB = upstream('B');
    const gatewayA = cache({ store: storeA })(upA.handler);
    const gatewayB = cache({ store: storeB })(upB.handler);

    const miss = await send(gatewayA, request({ 'accept-language': 'en' }));
    await storeA.flushed();
    const hit = await send(gatewayB, request({ 'accept-language': 'en' }));
    const otherVariant = await send(gatewayB, request({ 'accept-language': 'fr' }));

    expect(miss).toEqual({ status: 200, body: 'A:en', xCache: 'MISS' });
    expect(hit).toEqual({ status: 200, body: 'A:en', xCache: 'HIT' });
    expect(otherVariant).toEqual({ status: 200, body: 'B:fr', xCache: 'MISS' });
    expect([upA.calls, upB.calls]).toEqual([1, 1]);
    const ttl = await a.pttl(`${keyPrefix}GET http://shop.test/catalog?page=1`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });

  it('turns into a BYPASS without failing or hanging requests when its Redis dies', async () => {
    const port = await freePort();
    own = await startRedisServer(port);
    const client = createRedisClient(`redis://127.0.0.1:${port}`, { commandTimeout: '100ms' });
    clients.push(client);
    await ready(client);
    const failures: unknown[] = [];
    const redis = new RedisCacheStore(client, { onError: (e) => failures.push(e) });
    const store = tracked(redis);
    const up = upstream('U');
    const gateway = cache({ store })(up.handler);

    expect((await send(gateway)).xCache).toBe('MISS');
    await store.flushed();
    expect((await send(gateway)).xCache).toBe('HIT');

    await stopRedisServer(own, 'SIGKILL');

    const during = [await send(gateway), await send(gateway), await send(gateway)];
    expect(during).toEqual(Array(3).fill({ status: 200, body: 'U:-', xCache: 'BYPASS' }));
    expect(up.calls).toBe(4);
    expect(redis.errors).toBeGreaterThanOrEqual(3);
    expect(failures.length).toBe(redis.errors);
  });
});
