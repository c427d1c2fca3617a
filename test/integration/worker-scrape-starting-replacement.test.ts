import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { CRASH, HOLD_START, release } from '../support/held-worker-module.ts';
import { startHeldPool } from '../support/held-pool.ts';
import { parseExposition } from '../support/prom-text.ts';

/**
 * Review RJ, M2: /metrics and the admin overview waited with no limit for a
 * worker that had not listened yet, a crash's replacement whose start waits
 * on Redis or discovery: every scrape hung for the whole start (19.3 s in
 * RJ's probe, past Prometheus's 10 s scrape_timeout), the healthy workers'
 * series with it. A query's 5 s limit now counts from the ask, start-up
 * included, as a reload's does; the answer has the workers that answered.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('a scrape while a crashed worker\'s replacement is still starting', { timeout: 90_000 }, () => {
  it('answers with the workers that listen, without waiting for the replacement', async () => {
    const { pool, flags, stop } = await startHeldPool(0);
    cleanups.push(stop);
    // Held until the scrape has answered; released later anyway, so that a scrape that waits for it fails here, not at the timeout.
    const fallback = setTimeout(() => release(flags, HOLD_START, 0), 30_000);
    cleanups.push(() => clearTimeout(fallback));
    await pool.ready;
    const first = new Set<Worker>(pool.workers);

    release(flags, HOLD_START, 1);
    release(flags, CRASH, 1);
    // The replacement is spawned (a first crash of its slot is replaced at once) and held before it builds its gateway.
    while (pool.workers.every((w) => first.has(w))) await new Promise((r) => setTimeout(r, 20));

    const text = await pool.metrics();
    const overview = await pool.overview();
    const stillHeld = Atomics.load(flags, HOLD_START) === 1;
    const heap = parseExposition(text).get('rxgate_process_nodejs_heap_size_used_bytes')?.samples.map((s) => s.labels['worker']).sort();
    // Before, both waited until the replacement listened (here: the fallback's release).
    expect({ stillHeld, heap, workers: overview.workers }).toEqual({ stillHeld: true, heap: ['1', 'main'], workers: 1 });

    // Once it starts, it answers again.
    release(flags, HOLD_START, 0);
    let workers = 0;
    while (workers < 2) workers = (await pool.overview()).workers ?? 0;
    const again = parseExposition(await pool.metrics()).get('rxgate_process_nodejs_heap_size_used_bytes')?.samples.map((s) => s.labels['worker']).sort();
    expect(again).toEqual(['0', '1', 'main']);
  });
});
