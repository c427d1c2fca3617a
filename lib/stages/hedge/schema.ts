import { z } from 'zod';
import { duration, fitsTimer, method, TIMER_BOUND } from '../../config/common.ts';

/** `hedge:` on a service or route. */
export const hedgeOptions = z.strictObject({
  after: z.union([duration, z.string().regex(/^p\d{1,2}(\.\d+)?$/, 'expected a duration or a percentile like p95')]).refine((d) => typeof d === 'string' && d.startsWith('p') || fitsTimer(d), TIMER_BOUND).optional(),
  // 0 sent no hedge, hedging off without saying so (Envoy's initial_requests starts at 1): `hedge: false` says it.
  max: z.number().int().min(1, 'must be at least 1 (hedge: false turns hedging off)').max(3).optional(),
  methods: z.array(method).min(1).optional(),
});
export type HedgeConfig = z.output<typeof hedgeOptions>;
