import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { PoolMetrics, type MetricJson } from '../../lib/server/worker-retired.ts';

// One worker's registry: a counter and a gauge (in flight 3 in every worker).
const metrics = (requests: number): MetricJson[] => [
  { name: 'rxgate_requests_total', help: 'h', type: 'counter', aggregator: 'sum', values: [{ labels: { route: 'a' }, value: requests }] },
  { name: 'rxgate_upstream_in_flight', help: 'h', type: 'gauge', aggregator: 'sum', values: [{ labels: {}, value: 3 }] },
];
const lines = (text: string, name: string): string[] => text.split('\n').filter((l) => l.startsWith(name));

describe('PoolMetrics', () => {
  it('counts a crashed worker once and never adds its final gauges, across scrapes overlapping its exit (RR2 #6)', async () => {
    const A = { threadId: 1 } as unknown as Worker;
    const B = { threadId: 2 } as unknown as Worker;
    const live = new Set([A, B]);
    const pm = new PoolMetrics((w) => live.has(w));
    const ask = (w: Worker): Promise<MetricJson[]> => Promise.resolve(w === A ? metrics(10) : metrics(5));
    pm.final(B, metrics(5)); // B crashed, drained and sent its final: still live
    // A scrape that starts with B in its snapshot; B exits while it waits.
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const slow = pm.scrape([A, B], async (w) => { await gate; if (w === B) throw new Error('exited'); return ask(w); });
    live.delete(B);
    pm.retire(); // postponed: a scrape is under way
    const during = await pm.scrape([A], ask);
    release();
    const overlapped = await slow;
    const after = await pm.scrape([A], ask);
    for (const text of [during, overlapped, after]) {
      expect(lines(text, 'rxgate_requests_total')).toEqual(['rxgate_requests_total{route="a"} 15']);
      expect(lines(text, 'rxgate_upstream_in_flight')).toEqual(['rxgate_upstream_in_flight 3']);
    }
  });
});
