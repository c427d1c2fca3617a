import { z } from 'zod';
import { duration, status, timerDuration } from '../../config/common.ts';

/** `circuitBreaker:` on a service or route (`false` turns it off). */
export const circuitBreakerOptions = z.strictObject({
  perInstance: z.boolean().optional(),
  consecutiveFailures: z.number().int().min(0).optional(),
  failureRate: z.number().min(0).max(1).optional(),
  windowType: z.enum(['time', 'count']).optional(),
  window: duration.optional(),
  windowSize: z.number().int().min(1).optional(),
  minimumCalls: z.number().int().min(1).optional(),
  slowCallDuration: duration.optional(),
  resetTimeout: timerDuration.optional(),
  resetBackoff: z.number().min(1).optional(),
  maxResetTimeout: timerDuration.optional(),
  probes: z.number().int().min(1).optional(),
  probeSuccesses: z.number().int().min(1).optional(),
  failureStatuses: z.array(status).optional(),
  fallback: z.strictObject({
    status,
    headers: z.record(z.string(), z.string()).optional(),
    body: z.string().optional(),
  }).optional(),
}).superRefine((options, ctx) => {
  if (options.perInstance !== true) return;
  // Per instance, breaking is the service's outlier ejection: only what it has applies.
  for (const key of Object.keys(options)) {
    if (!PER_INSTANCE_KEYS.has(key)) {
      ctx.addIssue({ code: 'custom', path: [key], message: `does not apply with perInstance: true (per-instance breaking is the service's outlier ejection: ${[...PER_INSTANCE_KEYS].join(', ')})` });
    }
  }
});

/** What `perInstance: true` takes: they set the service's ejectAfter, ejectFor, maxEjectFor and ejectOnStatuses. */
const PER_INSTANCE_KEYS = new Set(['perInstance', 'consecutiveFailures', 'resetTimeout', 'maxResetTimeout', 'failureStatuses']);
export type CircuitBreakerConfig = z.output<typeof circuitBreakerOptions>;
