import { describe, expect, it } from 'vitest';
import { PoolMetrics } from '../../lib/server/worker-retired.ts';

/**
 * Review RJ, L5: under `--workers` the main thread registered prom-client's
 * process metrics at the first scrape, and prom-client's CPU counter counts
 * from its registration, so `process_cpu_seconds_total` left out the
 * process's start (its workers' ~0.7 s of CPU each) and every second before
 * the first scrape: 0.089 s read 6 s after a start of 2 workers. The
 * registry is now made with the pool.
 */

describe('the pool\'s process CPU counter', () => {
  it('counts the CPU spent before the first scrape', async () => {
    const metrics = new PoolMetrics(() => false);
    const start = process.cpuUsage();
    const spent = (): number => {
      const { user, system } = process.cpuUsage(start);
      return (user + system) / 1e6;
    };
    // CPU spent after the pool was made and before its first scrape.
    let x = 0;
    while (spent() < 0.2) for (let i = 0; i < 100_000; i++) x += Math.sqrt(i);
    const before = spent();
    const text = await metrics.scrape([], async () => []);
    const counted = Number(/^rxgate_process_process_cpu_seconds_total (\S+)$/m.exec(text)?.[1]);
    expect([x > 0, counted]).toEqual([true, expect.any(Number)]);
    // Before, the counter started at the scrape: a few ms.
    expect(counted).toBeGreaterThanOrEqual(before);
  });
});
