import { z } from 'zod';
import { duration } from '../../config/common.ts';

/** `timeouts:` on a service or route, read by the `timeout` and `attemptTimeout` stages. */
export const timeoutsOptions = z.strictObject({
  total: duration.optional(),
  perAttempt: duration.optional(),
  exchange: duration.optional(),
});
export type TimeoutsConfig = z.output<typeof timeoutsOptions>;
