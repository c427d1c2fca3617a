import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { PoolMetrics, type MetricJson } from '../../lib/server/worker-retired.ts';

/**
 * What `rxgate_upstream_healthy` means under `--workers N` (session 12's
 * leftover, F21 item 4; docs/metrics-and-admin.md, Several workers). Each
 * worker checks and ejects on its own, so there is no one state per
 * instance as in Envoy (its main thread checks for every worker): the
 * pool's `/metrics` shows 1 only when every worker has the instance in
 * rotation, 0 when any has it out, 0 or 1 whatever N is. The gauge's merge
 * is the one GatewayMetrics declares; the values are each worker's.
 */

const NAME = 'rxgate_upstream_healthy';

/** One worker's registry as it sends it: the gauge with the real metric's meta (its aggregator), and `healthy` by instance. */
async function worker(healthy: Record<string, 0 | 1>): Promise<MetricJson[]> {
  const meta = (await new GatewayMetrics({ defaultMetrics: false }).registry.getMetricsAsJSON()).find((m) => m.name === NAME)!;
  const values = Object.entries(healthy).map(([instance, value]) => ({ labels: { service: 'api', instance }, value }));
  return [{ ...(meta as unknown as MetricJson), values }];
}

async function merged(...workers: Array<Record<string, 0 | 1>>): Promise<string[]> {
  const threads = workers.map((_, i) => ({ threadId: i + 1 }) as unknown as Worker);
  const lists = await Promise.all(workers.map(worker));
  const text = await new PoolMetrics(() => true).scrape(threads, (w) => Promise.resolve(lists[threads.indexOf(w)]!));
  return text.split('\n').filter((l) => l.startsWith(`${NAME}{`));
}

describe('rxgate_upstream_healthy across workers', () => {
  it('is 0 for an instance any worker has out of rotation, 1 only where every worker has it in, never more than 1', async () => {
    // Worker 2 ejected a:1 on its own traffic (or its check failed first); both have b:1 in rotation.
    expect(await merged({ 'http://a:1': 1, 'http://b:1': 1 }, { 'http://a:1': 0, 'http://b:1': 1 })).toEqual([
      `${NAME}{service="api",instance="http://a:1"} 0`,
      `${NAME}{service="api",instance="http://b:1"} 1`,
    ]);
    expect(await merged({ 'http://a:1': 1 }, { 'http://a:1': 1 }, { 'http://a:1': 1 })).toEqual([`${NAME}{service="api",instance="http://a:1"} 1`]);
  });
});
