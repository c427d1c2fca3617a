import { z } from 'zod';
import { duration } from '../../config/common.ts';
import { parseDuration } from '../../duration.ts';

/** `rateLimit:` on a route. */
export const rateLimitOptions = z.strictObject({
  limit: z.number().int().min(1),
  window: duration.refine(atLeastOneMs, 'must be at least 1ms'),
  burst: z.number().int().min(1).optional(),
  key: z.union([
    z.enum(['ip', 'route']),
    z.strictObject({ claim: z.string().min(1) }),
    z.strictObject({ header: z.string().min(1) }),
  ]).optional(),
  store: z.enum(['memory', 'redis']).optional(),
  failOpen: z.boolean().optional(),
  /** Bucket namespace: routes with the same id share buckets. Default: the route's name or path. */
  id: z.string().optional(),
  headers: z.boolean().optional(),
}).refine((o) => o.failOpen === undefined || o.store === 'redis', {
  // It decides what happens when Redis cannot answer: on a memory store it would do nothing, silently.
  message: 'applies only to store: redis (a memory store always answers)',
  path: ['failOpen'],
});
export type RateLimitConfig = z.output<typeof rateLimitOptions>;

function atLeastOneMs(d: number | string): boolean {
  try {
    return parseDuration(d, 'window') >= 1;
  } catch {
    return true; // not a duration: the duration schema says so
  }
}
