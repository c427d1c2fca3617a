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
}).superRefine((o, ctx) => {
  // The limits given in one object; with defaults (20, 3, 1000) or a service's keys the stage checks them when built.
  const { minLimit: min, initialLimit: initial, maxLimit: max } = o;
  if (min !== undefined && max !== undefined && min > max) ctx.addIssue({ code: 'custom', path: ['minLimit'], message: `${min} is more than maxLimit (${max})` });
  else if (initial !== undefined && ((min !== undefined && initial < min) || (max !== undefined && initial > max))) {
    ctx.addIssue({ code: 'custom', path: ['initialLimit'], message: `${initial} is outside [minLimit, maxLimit] (${min ?? 3}, ${max ?? 1000})` });
  }
})]);
export type AdaptiveConcurrencyConfig = z.output<typeof adaptiveConcurrencyOptions>;
