import { z } from 'zod';

/** `maxBodySize:` on a service or route: the largest request body in bytes. */
export const maxBodySizeOptions = z.number().int().nonnegative();
