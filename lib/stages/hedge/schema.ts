import { z } from 'zod';
import { duration, method } from '../../config/common.ts';

/** `hedge:` on a service or route. */
export const hedgeOptions = z.strictObject({
  after: z.union([duration, z.string().regex(/^p\d{1,2}(\.\d+)?$/, 'expected a duration or a percentile like p95')]).optional(),
  max: z.number().int().min(0).max(3).optional(),
  methods: z.array(method).min(1).optional(),
});
export type HedgeConfig = z.output<typeof hedgeOptions>;
