import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffCeiling, fullJitter, parseRetryAfter } from '../../lib/stages/retry/backoff.ts';

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const ms = fc.integer({ min: 0, max: 60_000 });
const retryNo = fc.integer({ min: 1, max: 2000 });

describe('backoff', () => {
  it('waits between 0 and the cap, whatever the attempt and the random draw', () => {
    fc.assert(fc.property(retryNo, ms, ms, unit, (n, base, cap, r) => {
      const d = fullJitter(n, base, cap, () => r);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(cap);
      expect(d).toBeLessThanOrEqual(backoffCeiling(n, base, cap));
    }));
  });

  it('has a ceiling that never shrinks as attempts go on and reaches the cap', () => {
    fc.assert(fc.property(retryNo, ms, ms, (n, base, cap) => {
      expect(backoffCeiling(n + 1, base, cap)).toBeGreaterThanOrEqual(backoffCeiling(n, base, cap));
      expect(Number.isFinite(backoffCeiling(n, base, cap))).toBe(true);
      if (base > 0) expect(backoffCeiling(64, base, cap)).toBe(cap);
    }));
  });

  it('doubles from the base until the cap', () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffCeiling(n, 100, 1000))).toEqual([100, 200, 400, 800, 1000]);
  });

  it('reads Retry-After as whole seconds or as an HTTP date, never negative', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 10_000_000 }), (s) => {
      expect(parseRetryAfter(String(s), 0)).toBe(s * 1000);
    }));
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 4_000_000_000 }), fc.integer({ min: 0, max: 4_000_000_000 }),
      (at, now) => {
        const date = new Date(at * 1000).toUTCString();
        expect(parseRetryAfter(date, now * 1000)).toBe(Math.max(0, (at - now) * 1000));
      },
    ));
    expect(parseRetryAfter(undefined, 0)).toBeNull();
    expect(parseRetryAfter('soon', 0)).toBeNull();
    expect(parseRetryAfter('-5', 0)).toBeNull();
  });
});
