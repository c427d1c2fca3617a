import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { createRedisClient, type RedisClient } from '../../lib/resources/redis-client.ts';
import type { CacheEntry, CacheStore } from '../../lib/stages/cache/entry.ts';
import { namespaced } from '../../lib/stages/cache/index.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { RedisCacheStore } from '../../lib/stages/cache/redis-store.ts';
import { redisUrl } from '../support/redis.ts';

/**
 * Review RA's M1 (of 1871508, 36c6916): the delete of an entry superseded by
 * an answer that may not be stored removed whatever the key held by then: a
 * newer response (a no-cache refresh, another gateway on the same Redis) or
 * the URL's vary record with its invalidation mark. `deleteIf(key, storedAt)`
 * deletes only the entry stored at `storedAt`, in both stores (Redis: one
 * script, so nothing lands between the check and the delete), and through
 * the stage's namespaced view.
 */

const NOW = Date.UTC(2026, 0, 1);

function entry(storedAt: number, body: string): CacheEntry {
  return {
    kind: 'entry', status: 200, statusText: undefined, headers: ['content-type', 'text/plain'], body: BufferedBody.of(body), vary: [],
    storedAt, initialAge: 0, freshUntil: storedAt + 60_000, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

/** What `key` holds: an entry's body, 'vary', or null. */
async function holds(store: CacheStore, key: string): Promise<string | null> {
  const r = await store.get(key);
  return r === undefined ? null : r.kind === 'vary' ? 'vary' : Buffer.concat(r.body!.chunks).toString();
}

const clients: RedisClient[] = [];
afterAll(() => { for (const c of clients.splice(0)) c.disconnect(); });

async function redisStore(): Promise<CacheStore> {
  const client = createRedisClient(redisUrl());
  clients.push(client);
  if (client.status !== 'ready') await new Promise((r) => client.once('ready', r));
  return new RedisCacheStore(client, { keyPrefix: `rxgate:test:${randomUUID()}:` });
}

const stores: Array<[string, () => Promise<CacheStore>]> = [
  ['the memory store', async () => new MemoryCacheStore({ clock: { now: () => NOW + 1 } })],
  ['the memory store, through the stage\'s namespaced view', async () => namespaced(new MemoryCacheStore({ clock: { now: () => NOW + 1 } }), 'api')],
];
if (redisUrl() !== '') stores.push(['the Redis store (the test run\'s redis-server)', redisStore]);

describe.each(stores)('deleteIf in %s (review RA, M1)', (_name, make) => {
  it('deletes the entry stored at storedAt, and leaves a newer entry stored at the key meanwhile', async () => {
    const store = await make();
    await store.set('GET a', entry(NOW - 5000, 'old'), 60_000);
    await store.set('GET b', entry(NOW - 5000, 'old'), 60_000);
    await store.set('GET b', entry(NOW, 'newer'), 60_000);
    await store.deleteIf!('GET a', NOW - 5000);
    await store.deleteIf!('GET b', NOW - 5000);
    expect([await holds(store, 'GET a'), await holds(store, 'GET b')]).toEqual([null, 'newer']);
  });

  it('leaves a vary record (and with it the URL\'s invalidation mark) where the superseded entry was', async () => {
    const store = await make();
    await store.set('GET doc', { kind: 'vary', names: ['accept'], since: NOW }, 60_000);
    await store.deleteIf!('GET doc', NOW - 5000);
    expect(await store.get('GET doc')).toEqual({ kind: 'vary', names: ['accept'], since: NOW });
  });

  it('deletes an entry a hit has read (the memory store keeps it decoded) as one still packed', async () => {
    const store = await make();
    await store.set('GET c', entry(NOW - 5000, 'old'), 60_000);
    expect(await holds(store, 'GET c')).toBe('old');
    await store.deleteIf!('GET c', NOW);
    expect(await holds(store, 'GET c')).toBe('old');
    await store.deleteIf!('GET c', NOW - 5000);
    expect(await holds(store, 'GET c')).toBeNull();
  });
});
