import { z } from 'zod';
import { duration, headerName, method } from '../../config/common.ts';

/** `cors:` on a route (or a service, for all its routes). */
export const corsOptions = z.strictObject({
  origins: z.array(z.union([z.string().min(1), z.strictObject({ regex: z.string().min(1) })])).min(1).optional(),
  methods: z.array(z.union([z.literal('*'), method])).min(1).optional(),
  allowHeaders: z.array(headerName).optional(),
  exposeHeaders: z.array(headerName).optional(),
  credentials: z.boolean().optional(),
  maxAge: duration.optional(),
}).refine((c) => !(c.credentials === true && (c.origins === undefined || c.origins.includes('*'))), {
  message: 'credentials: true needs a list of origins (with *, every site could act as the user)',
  path: ['origins'],
});
export type CorsConfig = z.output<typeof corsOptions>;
