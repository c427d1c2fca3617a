import { z } from 'zod';
import { duration } from '../../config/common.ts';
import { parseDuration } from '../../duration.ts';

/**
 * A limit of 0 answered every request 504 at once (`total`, `exchange`) or
 * did something else (`perAttempt`); Envoy reads 0 as "no timeout". Neither
 * is worth guessing: leaving the key out is "no limit".
 */
// Not bounded at Node's timer limit: the deadline lists (deadlines.ts) arm for at most 2^31-1 ms and again for what is left.
const limit = duration.refine((d) => {
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
