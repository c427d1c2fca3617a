import { z } from 'zod';

/** Schema pieces every stage's options share. */

const durationPattern = /^\d+(\.\d+)?(ms|s|m|h)$/;

/** `250ms`, `30s`, `5m`, `1h`, or a number of milliseconds. */
export const duration = z.union([
  z.number().nonnegative(),
  z.string().regex(durationPattern, 'expected a duration like 250ms, 30s or 5m'),
]);

/** An HTTP method, upper-cased. */
export const method = z.string().regex(/^[A-Za-z]+$/, 'expected an HTTP method').transform((m) => m.toUpperCase());

/** An HTTP status code. */
export const status = z.number().int().min(100).max(599);

/** An absolute http:// or https:// URL. */
export const httpUrl = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}, 'expected an http:// or https:// URL');
