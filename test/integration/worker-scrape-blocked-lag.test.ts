import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/observe/log.ts';
import { BLOCK, BLOCKED, release } from '../support/held-worker-module.ts';
import { startHeldPool } from '../support/held-pool.ts';
import { parseExposition } from '../support/prom-text.ts';

/**
 * Review RJ, M1: a worker's event-loop lag statistics come from a histogram
 * that prom-client resets at each collect. A scrape gives up on a blocked
 * worker after 5 s; the worker, once free, used to collect anyway for that
 * scrape (whose answer the main thread drops), so the window holding the
 * stall was reset unseen and the next scrape showed the worker as idle
 * (lag max 0.014 s after a 9 s stall). The query now says until when the
 * scrape waits, and a worker that reads it later does not collect.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('a worker blocked through a scrape that gave up on it', { timeout: 60_000 }, () => {
  it('shows its stall in the next scrape\'s lag series (the late query does not reset them)', async () => {
    const logged: Array<{ msg: string; thread?: number }> = [];
    const { pool, flags, stop } = await startHeldPool(1, createLogger('warn', { write: (line: string) => { logged.push(JSON.parse(line)); } }));
    cleanups.push(stop);
    await pool.ready;
    await pool.metrics();

    release(flags, BLOCK, 1);
    while (Atomics.load(flags, BLOCKED) === 0) await new Promise((r) => setTimeout(r, 20));
    const blockedAt = Date.now();
    // Worker 1 cannot answer: this scrape leaves it out (after its 5 s limit) and shows worker 0.
    const during = parseExposition(await pool.metrics());
    const lagMax = (families: typeof during): Record<string, number> => Object.fromEntries(
      (families.get('rxgate_process_nodejs_eventloop_lag_max_seconds')?.samples ?? []).map((s) => [s.labels['worker'], s.value]));
    expect(Object.keys(lagMax(during)).sort()).toEqual(['0', 'main']);
    // It says which worker it left out.
    expect(logged.map((l) => [l.msg, l.thread])).toEqual([['gateway worker left out of this /metrics scrape: its series are missing from it', pool.workers[1]!.threadId]]);
    release(flags, BLOCK, 2);
    const stalled = (Date.now() - blockedAt) / 1000;

    const after = lagMax(parseExposition(await pool.metrics()));
    // The stall outlasted the scrape's limit; before, worker 1's window was reset with it (no sample yet, or 0.01 s).
    expect(stalled).toBeGreaterThanOrEqual(5);
    expect(after['1'] ?? 0).toBeGreaterThanOrEqual(stalled / 2);
  });
});
