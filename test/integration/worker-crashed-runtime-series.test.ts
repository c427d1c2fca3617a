import type { Worker } from 'node:worker_threads';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkerReply } from '../../lib/server/workers.ts';
import { isThreadMetric } from '../../lib/server/worker-runtime.ts';
import type { MetricJson } from '../../lib/server/worker-retired.ts';
import { startHeldPool } from '../support/held-pool.ts';
import { HOLD_REQUEST, release } from '../support/held-worker-module.ts';

/**
 * Review RJ, L6: nothing tested that a worker draining after a crash leaves
 * out its event-loop, heap and GC series. Its replacement takes its slot,
 * so both would send `worker="<slot>"` and /metrics would add their heaps,
 * average their lags and sum their GCs under one label, with no error.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** `worker`'s own answer to `rxgate:metrics`, asked directly. */
function metricsOf(worker: Worker, id: number): Promise<MetricJson[]> {
  return new Promise((resolve) => {
    const onMessage = (msg: WorkerReply): void => {
      if (msg.type !== 'rxgate:reply' || msg.id !== id) return;
      worker.off('message', onMessage);
      resolve(msg.value as MetricJson[]);
    };
    worker.on('message', onMessage);
    worker.postMessage({ type: 'rxgate:metrics', id });
  });
}

describe('a worker draining after a crash', { timeout: 60_000 }, () => {
  it('sends no runtime series of its own (its replacement has its slot)', async () => {
    const { pool, flags, port, stop } = await startHeldPool(-1);
    cleanups.push(stop);
    await pool.ready;
    const crashed = new Promise<Worker>((resolve) => {
      for (const w of pool.workers) w.on('message', (msg: WorkerReply) => { if (msg?.type === 'rxgate:crashed') resolve(w); });
    });
    // Its request is held in flight: the crashed worker drains until the test lets it go.
    const agent = new Agent({ connections: 1 });
    cleanups.push(() => agent.destroy());
    const held = request(`http://127.0.0.1:${port}/api/x/crash`, { dispatcher: agent }).then((res) => res.body.text(), () => undefined);
    const worker = await crashed;
    const live = pool.workers.find((w) => w !== worker)!;

    const names = (list: MetricJson[]): string[] => list.filter((m) => isThreadMetric(m.name)).map((m) => m.name);
    const [own, other] = await Promise.all([metricsOf(worker, 3_000_000), metricsOf(live, 3_000_001)]);
    expect(names(other)).toContain('rxgate_process_nodejs_heap_size_used_bytes');
    // Before the crashed flag, its answer carried them labelled by its slot.
    expect(names(own)).toEqual([]);
    expect(own.some((m) => m.name === 'rxgate_requests_total')).toBe(true);
    release(flags, HOLD_REQUEST, 1);
    await held;
  });
});
