import { z } from 'zod';
import { duration, status, timerDuration } from '../../config/common.ts';
import { NEVER_STORED } from './policy.ts';

/** `cache:` on a route. */
export const cacheOptions = z.strictObject({
  ttl: duration.optional(),
  maxTtl: duration.optional(),
  maxEntrySize: z.number().int().min(1).optional(),
  statuses: z.array(status).refine((list) => !list.some((s) => NEVER_STORED.has(s)), {
    message: '206 and 304 are never stored: a 206 is a part of a response, a 304 only updates a stored one (RFC 9111 §3.3, §4.3.4)',
  }).optional(),
  cacheAuthorized: z.boolean().optional(),
  staleWhileRevalidate: duration.optional(),
  staleIfError: duration.optional(),
  keep: duration.optional(),
  coalesce: z.boolean().optional(),
  store: z.enum(['memory', 'redis']).optional(),
});
export type CacheConfig = z.output<typeof cacheOptions>;

/** The top-level `cache:` key: store settings shared by every cached route. */
export const cacheStoresOptions = z.strictObject({
  memory: z.strictObject({ maxBytes: z.number().int().min(1024).optional() }).optional(),
  redis: z.strictObject({ keyPrefix: z.string().optional(), timeout: timerDuration.optional() }).optional(),
  /** Bytes the process reads ahead of slow clients on stored misses, all routes together (read-ahead.ts); 0: never. */
  maxReadAhead: z.number().int().min(0).optional(),
});
