import { z } from 'zod';

/** `compression:` on a route (or a service, for all its routes); `true` for the defaults. */
export const compressionOptions = z.union([
  z.literal(true),
  z.strictObject({
    encodings: z.array(z.enum(['br', 'gzip', 'zstd'])).min(1).optional(),
    minSize: z.number().int().nonnegative().optional(),
    types: z.array(z.string().min(3)).optional(),
    gzipLevel: z.number().int().min(1).max(9).optional(),
    brotliQuality: z.number().int().min(0).max(11).optional(),
    zstdLevel: z.number().int().min(1).max(19).optional(),
    removeAcceptEncoding: z.boolean().optional(),
  }),
]);
export type CompressionConfig = z.output<typeof compressionOptions>;
