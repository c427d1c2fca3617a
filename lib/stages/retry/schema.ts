import { z } from 'zod';
import { duration, method, status, timerDuration } from '../../config/common.ts';

/** `retry:` on a service or route (`false` turns retrying off). */
export const retryOptions = z.strictObject({
  attempts: z.number().int().min(1).optional(),
  base: timerDuration.optional(),
  cap: timerDuration.optional(),
  methods: z.array(method).optional(),
  statuses: z.array(status).optional(),
  bufferLimit: z.number().int().nonnegative().optional(),
  retryAfter: z.boolean().optional(),
  attemptsHeader: z.union([z.string(), z.null()]).optional(),
  budget: z.union([
    z.literal(false),
    z.strictObject({
      ratio: z.number().min(0).max(10).optional(),
      window: duration.optional(),
      minRetries: z.number().int().nonnegative().optional(),
      minConcurrent: z.number().int().nonnegative().optional(),
    }),
  ]).optional(),
});
export type RetryConfig = z.output<typeof retryOptions>;
