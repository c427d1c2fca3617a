import { describe, expect, it } from 'vitest';
import { headerValue } from '../../lib/stages/cache/entry.ts';
import { planStorage } from '../../lib/stages/cache/policy.ts';
import { entryOf, replay } from '../../lib/stages/cache/replay.ts';

/**
 * Review RG, L1: a hit restates an `Expires` that gave its freshness against
 * the gateway's `Date` (3b8a66d). Its lifetime is the entry's, which
 * `maxTtl` caps: a hit of an upstream's one-day `Expires` said 60 s when the
 * route's `maxTtl` was 60 s, while the miss that stored it passed the day.
 * `maxTtl` bounds what this cache keeps; downstream, the upstream's word stands.
 */

const T0 = Date.parse('Mon, 30 Nov 2026 05:00:00 GMT');
const DAY = 24 * 3600 * 1000;
const policy = (maxTtl: number | null) => ({ statuses: new Set([200]), ttl: 60_000, maxTtl, staleWhileRevalidate: 0, staleIfError: 0 });

function hitExpires(maxTtl: number | null, lifetime: number): string | undefined {
  const res = { status: 200, headers: ['date', new Date(T0).toUTCString(), 'expires', new Date(T0 + lifetime).toUTCString()], body: null };
  const plan = planStorage(res, T0, policy(maxTtl))!;
  return headerValue(replay(entryOf(res, plan, null), 'GET', 'HIT', T0 + 30_000).headers, 'expires');
}

describe('the Expires a hit sends when maxTtl cut the lifetime it gave (review RG, L1)', () => {
  it('is the upstream\'s, as the miss sent it, not the cap restated', () => {
    // Before: 05:01:30, the hit's Date (05:00:30) plus the capped 60 s.
    expect(hitExpires(60_000, DAY)).toBe(new Date(T0 + DAY).toUTCString());
  });

  it('is still restated when the cap did not cut it', () => {
    // Fresh until 05:00:50; sent at 05:00:30 with age 30: Date + lifetime, so a downstream counting age gets 20 s.
    expect(hitExpires(60_000, 50_000)).toBe(new Date(T0 + 30_000 + 50_000).toUTCString());
    expect(hitExpires(null, DAY)).toBe(new Date(T0 + 30_000 + DAY).toUTCString());
  });
});
