import { createHash } from 'node:crypto';
import { routeKey } from '../../config/checks.ts';
import { defined } from '../../config/defined.ts';
import { redisClient } from '../../resources/redis.ts';
import { defineStage, type StageContext } from '../define.ts';
import type { GcraRule, RateLimitResult } from './gcra.ts';
import { KeptStores } from './kept-stores.ts';
import { MemoryRateLimitStore } from './memory-store.ts';
import { rateLimit } from './rate-limit.ts';
import { RedisRateLimitStore } from './redis-store.ts';
import { rateLimitOptions } from './schema.ts';
import { isThenable, type RateLimitStore } from './store.ts';

export { rateLimit, type RateLimitOptions } from './rate-limit.ts';
export { gcraRule } from './gcra.ts';
export type { RateLimitStore } from './store.ts';
export { KeyBudget, MemoryRateLimitStore } from './memory-store.ts';
export { KeptStores } from './kept-stores.ts';
export { RedisRateLimitStore } from './redis-store.ts';

/** Keys the memory stores of a gateway hold together (about 20-40 MB at most). */
const MEMORY_KEYS = 100_000;

/** `rateLimit` on a route: GCRA per client (or claim, header, route), 429 over the limit. */
export const rateLimitStage = defineStage({
  name: 'rateLimit',
  options: rateLimitOptions,
  build(options, ctx) {
    const { store: kind, failOpen, id = bucketId(ctx), ...rest } = defined(options);
    const store = kind === 'redis' ? redisStore(ctx, failOpen ?? true) : memoryStore(ctx, id);
    const route = ctx.routeName;
    const events = ctx.events;
    return rateLimit({ id, ...rest, store: new ObservedStore(store, () => events.emit('rateLimited', { route })) });
  },
});

/**
 * The route's buckets' namespace: its name, else its path; and for a route
 * without a name whose path another route also has (GET and POST routes, a
 * route per matched header), the path and `#` and a hash of its path,
 * methods and match, so each route counts its own (they shared one bucket
 * under different limits). Compared by path, not by object: the route here
 * is a copy per backend. The hash (base64url) has no `{` or `}`: Redis
 * Cluster would hash only what is between them, one slot for every client.
 */
function bucketId(ctx: StageContext): string {
  const { route, config } = ctx;
  if (route.name !== undefined) return route.name;
  let onPath = 0;
  for (const r of config.routes) if (r.path === route.path) onPath++;
  if (onPath < 2) return route.path;
  return `${route.path}#${createHash('sha1').update(routeKey(route, true)).digest('base64url').slice(0, 12)}`;
}

/**
 * One store per bucket id, all in one budget of keys: a flood of new keys on
 * one route (an address or a header value per request) forgets that route's
 * own clients past the budget, not those of another route's limit (one
 * store for all forgave a client refused on a login route once another
 * route had admitted 100,000 new keys after it). Kept across reloads by id,
 * also through a reload that drops the id (see KeptStores).
 */
function memoryStore(ctx: StageContext, id: string): MemoryRateLimitStore {
  const kept = ctx.resources.get('ratelimit:memory', () => new KeptStores(MEMORY_KEYS), (k) => k.close());
  return ctx.resources.get(`ratelimit:memory:${id}`, () => kept.take(id, (budget) => new MemoryRateLimitStore({
    runtime: ctx.runtime,
    budget,
  })), () => kept.leave(id));
}

function redisStore(ctx: StageContext, failOpen: boolean): RedisRateLimitStore {
  // The URL in the key: a reload to another Redis makes a store on its client.
  return ctx.resources.get(`ratelimit:redis:${failOpen}:${ctx.config.redis?.url}`, () => new RedisRateLimitStore({
    client: redisClient(ctx),
    failOpen,
    onFallback: () => ctx.events.emit('degraded', { reason: 'ratelimit_redis_fallback' }),
    logger: ctx.logger,
    runtime: ctx.runtime,
  }));
}

/** A store that reports each refusal (for metrics), with no cost on the admitted path. */
class ObservedStore implements RateLimitStore {
  constructor(private readonly inner: RateLimitStore, private readonly onLimited: () => void) {}

  consume(key: string, rule: GcraRule): RateLimitResult | Promise<RateLimitResult> {
    const r = this.inner.consume(key, rule);
    if (isThenable(r)) {
      return Promise.resolve(r).then((result) => {
        if (!result.allowed) this.onLimited();
        return result;
      });
    }
    if (!r.allowed) this.onLimited();
    return r;
  }
}
