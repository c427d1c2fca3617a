import { z } from 'zod';

/** `mirror:` on a route. */
export const mirrorOptions = z.strictObject({
  service: z.string(),
  percent: z.number().min(0).max(100).optional(),
  maxInFlight: z.number().int().min(1).optional(),
  maxBodyBytes: z.number().int().min(0).optional(),
});
export type MirrorConfig = z.output<typeof mirrorOptions>;
