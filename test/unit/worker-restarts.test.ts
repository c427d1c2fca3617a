import { describe, expect, it } from 'vitest';
import { RestartBackoff } from '../../lib/server/worker-restarts.ts';

describe('RestartBackoff', () => {
  it('replaces a first crash at once, then waits 1 s, 2 s, 4 s… up to 30 s while a slot keeps crashing soon after it listened', () => {
    let now = 0;
    const backoff = new RestartBackoff(() => now);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const listened = now;
      now += 5000; // up 5 s, then it crashes
      const d = backoff.next(0, listened);
      delays.push(d);
      now += d;
    }
    expect(delays).toEqual([0, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });

  it('starts again from none once a worker stayed up 30 s, and counts each slot on its own', () => {
    let now = 0;
    const backoff = new RestartBackoff(() => now);
    expect([backoff.next(0, now), backoff.next(0, now), backoff.next(0, now)]).toEqual([0, 1000, 2000]);
    expect(backoff.next(1, now)).toBe(0);
    const listened = now;
    now += 30_000;
    expect(backoff.next(0, listened)).toBe(0);
    expect(backoff.next(0, now)).toBe(0);
    expect(backoff.next(0, now)).toBe(1000);
  });
});
