import { z } from 'zod';
import { duration } from '../../config/common.ts';

/** `rateLimit:` on a route. */
export const rateLimitOptions = z.strictObject({
  limit: z.number().int().min(1),
  window: duration,
  burst: z.number().int().min(1).optional(),
  key: z.union([
    z.enum(['ip', 'route']),
    z.strictObject({ claim: z.string() }),
    z.strictObject({ header: z.string() }),
  ]).optional(),
  store: z.enum(['memory', 'redis']).optional(),
  failOpen: z.boolean().optional(),
  /** Bucket namespace: routes with the same id share buckets. Default: the route's name or path. */
  id: z.string().optional(),
  headers: z.boolean().optional(),
});
export type RateLimitConfig = z.output<typeof rateLimitOptions>;
