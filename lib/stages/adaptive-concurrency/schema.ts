import { z } from 'zod';
import { duration } from '../../config/common.ts';

/** `adaptiveConcurrency:` on a service or route (`true` for the defaults). */
export const adaptiveConcurrencyOptions = z.union([z.literal(true), z.strictObject({
  initialLimit: z.number().int().min(1).optional(),
  minLimit: z.number().int().min(1).optional(),
  maxLimit: z.number().int().min(1).optional(),
  window: duration.optional(),
  minRttWindow: duration.optional(),
  buffer: z.number().min(0).max(10).optional(),
})]);
export type AdaptiveConcurrencyConfig = z.output<typeof adaptiveConcurrencyOptions>;
