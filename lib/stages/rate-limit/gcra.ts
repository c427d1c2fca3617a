/**
 * GCRA (generic cell rate algorithm): a token bucket kept as one number per
 * key, the theoretical arrival time (TAT) at which the key's bucket is full
 * again. `limit` per `window` is the sustained rate: one request every
 * `T = window / limit`. `burst` is the bucket size: how many may arrive at
 * once after a quiet spell. Over any span of L ms a key is admitted at most
 * `burst + floor(L / T)` times; with `burst: 1` that is at most `limit` in any
 * window of length `window` (strictly smooth, no bursts).
 *
 * All arithmetic is in whole microseconds so the memory store, the Redis
 * script and the tests agree to the last unit (no float drift at the edge of
 * the bucket). `T` is rounded *up* to a microsecond: never more than asked.
 */

export interface GcraRule {
  /** Requests per window (the headers' `ratelimit-limit`). */
  readonly limit: number;
  /** Bucket size: requests admitted back to back after a quiet spell. */
  readonly burst: number;
  /** T: microseconds one request costs. */
  readonly emissionUs: number;
  /** burst × T: how far ahead of now the TAT may run. */
  readonly toleranceUs: number;
}

/** Builds a rule; throws `TypeError` on nonsense. */
export function gcraRule(limit: number, windowMs: number, burst: number = limit): GcraRule {
  if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`rateLimit: limit must be a positive integer, got ${limit}`);
  if (!Number.isInteger(burst) || burst < 1) throw new TypeError(`rateLimit: burst must be a positive integer, got ${burst}`);
  if (!(windowMs >= 1)) throw new TypeError(`rateLimit: window must be at least 1ms, got ${windowMs}`);
  const emissionUs = Math.ceil((windowMs * 1000) / limit);
  return { limit, burst, emissionUs, toleranceUs: emissionUs * burst };
}

/** The outcome of one check, as every store returns it. */
export interface RateLimitResult {
  readonly allowed: boolean;
  /** The rule's `limit`. */
  readonly limit: number;
  /** Requests that could still be admitted right now. */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again. */
  readonly resetMs: number;
  /** When refused: milliseconds until a request would be admitted; 0 when admitted. */
  readonly retryAfterMs: number;
}

/** The public result of a step (the Redis script returns the same three numbers). */
export function gcraResult(rule: GcraRule, allowed: boolean, aheadUs: number, retryAfterUs: number): RateLimitResult {
  const free = allowed ? Math.floor((rule.toleranceUs - aheadUs) / rule.emissionUs) : 0;
  return {
    allowed,
    limit: rule.limit,
    remaining: Math.max(0, Math.min(rule.limit, free)),
    resetMs: aheadUs / 1000,
    retryAfterMs: retryAfterUs / 1000,
  };
}

/** Whole microseconds from a millisecond clock reading. */
export function toMicros(nowMs: number): number {
  return Math.floor(nowMs * 1000);
}
