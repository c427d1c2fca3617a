import { failOnStatuses, type CallOutcome } from '../stages/circuit-breaker/outcome.ts';
import { BreakerRegistry } from '../stages/circuit-breaker/registry.ts';
import { Breaker, type BreakerOptions } from '../stages/circuit-breaker/breaker.ts';
import { keySource, type KeySource } from '../stages/auth/keys.ts';
import type { CacheStore } from '../stages/cache/entry.ts';
import { bodyLimit } from '../stages/body-limit/body-limit.ts';
import { cache } from '../stages/cache/cache.ts';
import { circuitBreaker } from '../stages/circuit-breaker/circuit-breaker.ts';
import { jwtAuth, type JwtAuthOptions } from '../stages/auth/jwt-auth.ts';
import { rateLimit } from '../stages/rate-limit/rate-limit.ts';
import { retry, type RetryOptions } from '../stages/retry/retry.ts';
import { timeout } from '../stages/timeout/timeout.ts';
import { MemoryCacheStore } from '../stages/cache/memory-store.ts';
import { RedisCacheStore } from '../stages/cache/redis-store.ts';
import { MemoryRateLimitStore } from '../stages/rate-limit/memory-store.ts';
import { RedisRateLimitStore } from '../stages/rate-limit/redis-store.ts';
import { createRedisClient, redisReady, type RedisClient } from '../resources/redis-client.ts';
import { tap } from 'rxjs';
import type { Policy } from '../types.ts';
import type { RouteContext } from './build.ts';

/**
 * Turns one route's YAML into the stages `pipeline.ts` composes. Each
 * function returns null when the stage is off for the route. Services set
 * defaults for `timeouts`, `retry` and `circuitBreaker`; a route's object is
 * merged over its service's, and `false` turns a stage off.
 */

/** Defaults that apply when neither service nor route says anything. */
const RETRY_DEFAULT = { attempts: 2 }; // one retry, like nginx's proxy_next_upstream
const BREAKER_DEFAULT: BreakerOptions = {};

function merged<T extends object>(service: T | false | undefined, route: T | false | undefined, fallback: T): T | null {
  if (route === false || (route === undefined && service === false)) return null;
  return { ...fallback, ...(service === false ? {} : service), ...(route === undefined ? {} : route) };
}

function shared<T>(ctx: RouteContext, key: string, make: () => T): T {
  let v = ctx.shared.get(key) as T | undefined;
  if (v === undefined) {
    v = make();
    ctx.shared.set(key, v);
  }
  return v;
}

/** The one Redis client every Redis-backed store of this gateway uses. */
export function redisClient(ctx: RouteContext): RedisClient {
  return shared(ctx, 'redis', () => {
    const url = ctx.config.redis?.url;
    if (url === undefined) throw new TypeError('a store: redis needs the top-level redis.url');
    let down = false;
    const client = createRedisClient(url, {
      onError: (err) => {
        if (!down) ctx.logger.warn({ err: (err as Error).message }, 'redis unreachable: rate limits fall back and the cache bypasses');
        down = true;
        ctx.metrics.degraded.inc({ reason: 'redis_error' });
      },
    });
    client.on('ready', () => {
      if (down) ctx.logger.info('redis reachable again');
      down = false;
    });
    ctx.onClose(async () => {
      client.disconnect();
    });
    // Give Redis a moment at start so the first requests see it; if it is
    // down, start anyway: the stores fall back (logged and counted).
    ctx.beforeListen(() => redisReady(client, '3s').catch((err: Error) => {
      ctx.logger.warn({ url: redactUrl(url), err: err.message }, 'redis not reachable at start: rate limits fall back, cache bypasses');
      ctx.metrics.degraded.inc({ reason: 'redis_unreachable_at_start' });
    }));
    return client;
  });
}

export function authStage(ctx: RouteContext): Policy | null {
  const top = ctx.config.auth;
  const own = ctx.route.auth;
  if (own === undefined || own === 'none' || (typeof own === 'object' && own.mode === 'none')) return null;
  const base = typeof top === 'object' ? top : {};
  const routeObj = typeof own === 'string' ? { mode: own } : own;
  const options = { ...base, ...routeObj } as JwtAuthOptions;
  // Routes that use the top-level keys share one key source (one JWKS cache).
  const ownsKeys = 'secret' in routeObj || 'publicKey' in routeObj || 'jwksUrl' in routeObj;
  if (!ownsKeys && typeof top === 'object') {
    const keys = shared<KeySource>(ctx, 'auth:keys', () => keySource(top as JwtAuthOptions));
    const { secret: _s, publicKey: _p, jwksUrl: _j, jwks: _k, ...rest } = options;
    return jwtAuth({ ...rest, keys });
  }
  return jwtAuth(options);
}

export function rateLimitStage(ctx: RouteContext): Policy | null {
  const rl = ctx.route.rateLimit;
  if (rl === undefined) return null;
  const { store: kind, failOpen, ...options } = rl;
  const store = kind === 'redis'
    ? shared(ctx, `ratelimit:redis:${failOpen ?? true}`, () => new RedisRateLimitStore({
      client: redisClient(ctx),
      failOpen: failOpen ?? true,
      onFallback: () => ctx.metrics.degraded.inc({ reason: 'ratelimit_redis_fallback' }),
      logger: ctx.logger,
    }))
    : shared(ctx, 'ratelimit:memory', () => new MemoryRateLimitStore());
  const limited = ctx.metrics.rateLimited.labels(ctx.route.name ?? ctx.route.path);
  const policy = rateLimit({ id: ctx.route.name ?? ctx.route.path, ...options, store } as Parameters<typeof rateLimit>[0]);
  return countRejections(policy, 'RATE_LIMITED', () => limited.inc());
}

export function cacheStage(ctx: RouteContext): Policy | null {
  const c = ctx.route.cache;
  if (c === undefined) return null;
  const { store: kind, ...options } = c;
  const stores = ctx.config.cache;
  const store = kind === 'redis'
    ? shared(ctx, 'cache:redis', () => new RedisCacheStore(redisClient(ctx), {
      ...(stores?.redis?.keyPrefix !== undefined ? { keyPrefix: stores.redis.keyPrefix } : {}),
      ...(stores?.redis?.timeout !== undefined ? { timeout: stores.redis.timeout } : {}),
    }))
    : shared(ctx, 'cache:memory', () => new MemoryCacheStore({ maxBytes: stores?.memory?.maxBytes ?? 64 * 1024 * 1024 }));
  return cache({
    ...options,
    // Keys name the request after its route's rewrite: the service completes
    // them, or two services' `/items` would share one entry.
    store: namespaced(store, ctx.service.name),
    onStoreError: (err) => {
      ctx.metrics.degraded.inc({ reason: 'cache_store_bypass' });
      ctx.logger.debug({ err: (err as Error).message }, 'cache store failed; bypassing');
    },
  } as Parameters<typeof cache>[0]);
}

/** A view of `store` whose keys all start with `ns`. */
function namespaced(store: CacheStore, ns: string): CacheStore {
  const k = (key: string): string => `${ns} ${key}`;
  return {
    get: (key) => store.get(k(key)),
    set: (key, record, ttl) => store.set(k(key), record, ttl),
    ...(store.delete !== undefined ? { delete: (key: string) => store.delete!(k(key)) } : {}),
  };
}

/** `maxBodySize` (route over service): 413 for larger request bodies. */
export function bodyLimitStage(ctx: RouteContext): Policy | null {
  const maxBytes = ctx.route.maxBodySize ?? ctx.serviceConfig.maxBodySize;
  return maxBytes === undefined ? null : bodyLimit({ maxBytes });
}

/** `timeouts.total` (+ `exchange`): outside retry, bounds every attempt together. */
export function totalTimeoutStage(ctx: RouteContext): Policy | null {
  const t = { ...ctx.serviceConfig.timeouts, ...ctx.route.timeouts };
  if (t.total === undefined && t.exchange === undefined) return null;
  return timeout({ head: t.total ?? null, exchange: t.exchange ?? null });
}

/** `timeouts.perAttempt`: inside retry, each attempt on its own. */
export function attemptTimeoutStage(ctx: RouteContext): Policy | null {
  const t = { ...ctx.serviceConfig.timeouts, ...ctx.route.timeouts };
  return t.perAttempt === undefined ? null : timeout({ head: t.perAttempt });
}

export function retryStage(ctx: RouteContext): Policy | null {
  const options = merged<Record<string, unknown>>(ctx.serviceConfig.retry, ctx.route.retry, RETRY_DEFAULT) as RetryOptions | null;
  if (options === null || options.attempts === 1) return null;
  const service = ctx.service.name;
  const retries = ctx.metrics.retries.labels(service);
  return retry({
    ...options,
    onRetry: () => retries.inc(),
    onRefused: (event) => {
      ctx.metrics.degraded.inc({ reason: 'retry_budget_refused' });
      ctx.logger.warn({ service, reqId: event.req?.id }, 'retry refused: retry budget spent');
    },
  });
}

type BreakerPlan =
  | { kind: 'off' }
  | { kind: 'service'; policy: Policy }
  | { kind: 'instance'; registry: BreakerRegistry; isFailure?: (outcome: CallOutcome) => boolean };

/**
 * One breaker per service, shared by all its routes (a route with its own
 * `circuitBreaker` object gets its own), or with `perInstance: true` one per
 * upstream instance, which `forward` consults when it picks an instance.
 * Build time only; the Breaker objects are shared through `ctx.shared`.
 */
function breakerPlan(ctx: RouteContext): BreakerPlan {
  const own = ctx.route.circuitBreaker;
  const options = merged(ctx.serviceConfig.circuitBreaker, own, BREAKER_DEFAULT as Record<string, unknown>);
  if (options === null) return { kind: 'off' };
  const { perInstance, failureStatuses, fallback, ...breakerOptions } = options as Record<string, unknown> & {
    perInstance?: boolean; failureStatuses?: number[]; fallback?: { status: number; headers?: Record<string, string>; body?: string };
  };
  const service = ctx.service.name;
  const key = own !== undefined && own !== false ? `breaker:${service}:${ctx.route.path}` : `breaker:${service}`;
  const onTransition = (t: { key: string; from: string; to: string }): void => {
    ctx.metrics.breakerTransitions.inc({ service, to: t.to });
    ctx.metrics.breakerState.set({ service }, t.to === 'closed' ? 0 : t.to === 'half-open' ? 1 : 2);
    ctx.logger.warn({ service, breaker: t.key, from: t.from, to: t.to }, 'circuit breaker transition');
  };
  const isFailure = failureStatuses !== undefined ? failOnStatuses(failureStatuses) : undefined;
  if (perInstance === true) {
    const registry = shared(ctx, `${key}:instances`, () => new BreakerRegistry({ ...breakerOptions, onTransition } as BreakerOptions));
    return isFailure === undefined ? { kind: 'instance', registry } : { kind: 'instance', registry, isFailure };
  }
  const breaker = shared(ctx, key, () => new Breaker({ ...breakerOptions, key: service, onTransition } as BreakerOptions));
  return {
    kind: 'service',
    policy: circuitBreaker(breaker, {
      ...(isFailure !== undefined ? { isFailure } : {}),
      ...(fallback !== undefined ? { fallback } : {}),
    }),
  };
}

/** The route's circuit breaker stage, or null when it is off or kept per instance. */
export function breakerStage(ctx: RouteContext): Policy | null {
  const plan = breakerPlan(ctx);
  return plan.kind === 'service' ? plan.policy : null;
}

/** `forward`'s options for per-instance breakers (`perInstance: true`); empty otherwise. */
export function instanceBreakers(ctx: RouteContext): { breakers?: BreakerRegistry; isFailure?: (outcome: CallOutcome) => boolean } {
  const plan = breakerPlan(ctx);
  if (plan.kind !== 'instance') return {};
  return plan.isFailure === undefined ? { breakers: plan.registry } : { breakers: plan.registry, isFailure: plan.isFailure };
}

/** Counts a stage's rejections with a given error code. */
function countRejections(policy: Policy, code: string, count: () => void): Policy {
  const onError = (err: unknown): void => {
    if ((err as { code?: string } | null)?.code === code) count();
  };
  return (next) => {
    const handler = policy(next);
    return (req) => handler(req).pipe(tap({ error: onError }));
  };
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
