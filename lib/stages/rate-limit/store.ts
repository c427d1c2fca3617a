import type { GcraRule, RateLimitResult } from './gcra.ts';

/**
 * Where rate-limit state lives. `consume` takes one request's worth from
 * `key`'s bucket. A store may answer synchronously (memory) or with a Promise
 * (Redis); the `rateLimit` operator only goes asynchronous for a Promise, so an
 * in-memory check costs no microtask.
 */
export interface RateLimitStore {
  consume(key: string, rule: GcraRule): RateLimitResult | Promise<RateLimitResult>;
}

/** True for a Promise (or any thenable) result. */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
