/**
 * The ceiling of the `retry`-th retry's delay (1-based): `base · 2^(retry-1)`,
 * never above `cap`. Non-decreasing in `retry`.
 */
export function backoffCeiling(retry: number, base: number, cap: number): number {
  if (base <= 0 || cap <= 0) return 0;
  // 2^1100 is Infinity, and min(cap, Infinity) is cap: no overflow to fear
  return Math.min(cap, base * 2 ** Math.max(0, retry - 1));
}

/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential
 * Backoff And Jitter"): uniform in `[0, ceiling)`, `random` giving `[0, 1)`.
 */
export function fullJitter(retry: number, base: number, cap: number, random: () => number): number {
  return random() * backoffCeiling(retry, base, cap);
}

const SECONDS = /^\d+$/;
// Every HTTP date form names a weekday and a month; V8's Date.parse would take '-5' as a year.
const HAS_NAME = /[a-z]/i;

/**
 * A `Retry-After` value (RFC 9110 §10.2.3: delay-seconds or an HTTP date) in
 * ms from `nowEpochMs`, at least 0; null when absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined, nowEpochMs: number): number | null {
  if (value === undefined) return null;
  const v = value.trim();
  if (SECONDS.test(v)) return Number(v) * 1000;
  const at = HAS_NAME.test(v) ? Date.parse(v) : NaN;
  return Number.isNaN(at) ? null : Math.max(0, at - nowEpochMs);
}
