import { z } from 'zod';
import { timerDuration } from '../../config/common.ts';
import { parseDuration } from '../../duration.ts';

/**
 * A limit of 0 answered every request 504 at once (`total`, `exchange`) or
 * did something else (`perAttempt`); Envoy reads 0 as "no timeout". Neither
 * is worth guessing: leaving the key out is "no limit".
 */
const limit = timerDuration.refine((d) => {
  try {
    return parseDuration(d) > 0;
  } catch {
    return true; // not a duration: the duration schema says so
  }
}, 'must be more than 0 (leave the key out for no limit)');

/** `timeouts:` on a service or route, read by the `timeout` and `attemptTimeout` stages. */
export const timeoutsOptions = z.strictObject({
  total: limit.optional(),
  perAttempt: limit.optional(),
  exchange: limit.optional(),
});
export type TimeoutsConfig = z.output<typeof timeoutsOptions>;
