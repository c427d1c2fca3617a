import { defined } from '../../config/defined.ts';
import { redisClient } from '../../resources/redis.ts';
import { defineStage, type StageContext } from '../define.ts';
import { cache } from './cache.ts';
import { routeTotal } from './coalesce.ts';
import type { CacheRecord, CacheStore } from './entry.ts';
import { MemoryCacheStore } from './memory-store.ts';
import { READ_AHEAD_DEFAULT, readAhead } from './read-ahead.ts';
import { RedisCacheStore } from './redis-store.ts';
import { cacheOptions } from './schema.ts';

export { cache, type CacheOptions, type CacheStatus } from './cache.ts';
export type { CacheStore } from './entry.ts';
export { MemoryCacheStore } from './memory-store.ts';
export { RedisCacheStore } from './redis-store.ts';

const MEMORY_DEFAULT = 64 * 1024 * 1024; // 64 MiB
/** Keys `namespaced` remembers with their prefixed forms: a power of two. */
const MEMO_SIZE = 32;

/** `cache` on a route: answers from cache (Cache-Control aware), coalesces misses. */
export const cacheStage = defineStage({
  name: 'cache',
  options: cacheOptions,
  build(options, ctx) {
    const { store: kind, ...rest } = defined(options);
    const store = kind === 'redis' ? redisStore(ctx) : memoryStore(ctx);
    const events = ctx.events;
    // One budget per process (thread): the config last built sets it.
    readAhead.max = ctx.config.cache?.maxReadAhead ?? READ_AHEAD_DEFAULT;
    return cache({
      ...rest,
      runtime: ctx.runtime,
      // The timeout stage runs after the cache: a coalesced wait is bounded here.
      waitTimeout: routeTotal(ctx),
      // Keys name the request after its route's rewrite: the service completes
      // them, or two services' `/items` would share one entry.
      store: namespaced(store, ctx.service.name),
      onStoreError: (err) => events.emit('degraded', { reason: 'cache_store_bypass', err }),
    });
  },
});

function memoryStore(ctx: StageContext): CacheStore {
  const maxBytes = ctx.config.cache?.memory?.maxBytes ?? MEMORY_DEFAULT;
  return ctx.resources.get(`cache:memory:${maxBytes}`, () => new MemoryCacheStore({ maxBytes, runtime: ctx.runtime }));
}

function redisStore(ctx: StageContext): CacheStore {
  const r = ctx.config.cache?.redis;
  // The URL in the key: a reload to another Redis makes a store on its client.
  return ctx.resources.get(`cache:redis:${ctx.config.redis?.url}:${JSON.stringify(r ?? {})}`, () => new RedisCacheStore(redisClient(ctx), {
    ...(r?.keyPrefix !== undefined ? { keyPrefix: r.keyPrefix } : {}),
    ...(r?.timeout !== undefined ? { timeout: r.timeout } : {}),
    runtime: ctx.runtime,
  }));
}

/** A view of `store` whose keys all start with `ns` (exported for its test). */
export function namespaced(store: CacheStore, ns: string): CacheStore {
  // The last keys by length, each with its prefixed form: a base key the
  // stage's KeyMemo gives again maps to the same string object, whose hash
  // V8 keeps, so the store's Map need not hash a new concatenation per hit.
  const keys = new Array<string | undefined>(MEMO_SIZE).fill(undefined);
  const prefixed = new Array<string>(MEMO_SIZE).fill('');
  const k = (key: string): string => {
    const i = key.length & (MEMO_SIZE - 1);
    if (keys[i] === key) return prefixed[i]!;
    const out = `${ns} ${key}`;
    keys[i] = key;
    prefixed[i] = out;
    return out;
  };
  return {
    // Without it the miss path copies every stored body once more for the
    // store to copy it again (the view had dropped it: bench/memory/cache-miss.ts).
    copiesBodies: store.copiesBodies === true,
    get: (key) => store.get(k(key)),
    set: (key, record, ttl) => store.set(k(key), record, ttl),
    ...(store.delete !== undefined ? { delete: (key: string) => store.delete!(k(key)) } : {}),
    ...(store.deleteIf !== undefined ? { deleteIf: (key: string, at: number) => store.deleteIf!(k(key), at) } : {}),
    ...(store.replace !== undefined ? { replace: (key: string, record: CacheRecord, ttl: number, at: number) => store.replace!(k(key), record, ttl, at) } : {}),
  };
}
