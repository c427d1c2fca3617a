import { isMainThread, workerData } from 'node:worker_threads';
import { defer, switchMap } from 'rxjs';
import { z } from 'zod';
import { defineStage } from '../../lib/stages/define.ts';

/**
 * The CLI's module (lib/index.ts) for tests of a pool whose workers a test
 * holds, through an Int32Array over a SharedArrayBuffer that it passes in
 * the pool's WorkerData as `held` (`heldData`), with no timing involved:
 * - BLOCK: set to 1, the worker of slot `heldSlot` blocks its event loop
 *   (Atomics.wait, as a long synchronous task would) and sets BLOCKED, until
 *   the test sets BLOCK to 2 (`release`);
 * - CRASH: set to 1, that worker throws where nothing catches it;
 * - HOLD_START: while 1, a later start of that slot (a crash's replacement)
 *   waits before its gateway is built, as a replacement waiting on Redis;
 * - HOLD_REQUEST: while 0, a request through the `held` stage waits; a path
 *   ending in `/crash` also throws on the next turn (its worker crashes and
 *   drains with that request in flight).
 */
export * from '../../lib/index.ts';

export const BLOCK = 0;
export const BLOCKED = 1;
export const CRASH = 2;
export const HOLD_START = 3;
export const HOLD_REQUEST = 4;
/** How many times the held slot's worker has started (written by the workers). */
const STARTS = 5;

/** The shared flags a test passes to the pool, and what to spread into its WorkerData. */
export function heldData(slot: number): { flags: Int32Array; data: { held: Int32Array; heldSlot: number } } {
  const flags = new Int32Array(new SharedArrayBuffer(8 * Int32Array.BYTES_PER_ELEMENT));
  return { flags, data: { held: flags, heldSlot: slot } };
}

/** Sets `index` to `value` and wakes a worker waiting on it. */
export function release(flags: Int32Array, index: number, value: number): void {
  Atomics.store(flags, index, value);
  Atomics.notify(flags, index);
}

const data = (isMainThread ? null : workerData) as { held?: Int32Array; heldSlot?: number; slot?: number } | null;
const flags = data?.held;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

if (flags !== undefined && data?.slot === data?.heldSlot) {
  if (Atomics.add(flags, STARTS, 1) > 0) {
    while (Atomics.load(flags, HOLD_START) === 1) await sleep(20);
  }
  let blocking = false;
  const poll = setInterval(() => {
    if (Atomics.load(flags, CRASH) === 1) {
      Atomics.store(flags, CRASH, 0);
      setImmediate(() => { throw new Error('held-worker-module: a bug nothing caught'); });
    }
    if (Atomics.load(flags, BLOCK) !== 1 || blocking) return;
    blocking = true;
    // In the check phase: the next loop turn runs its due timers (the lag histogram's sample of the stall) before it
    // reads the messages queued meanwhile, so where the stall is sampled does not depend on the two timers' phases.
    setImmediate(() => {
      Atomics.store(flags, BLOCKED, 1);
      Atomics.wait(flags, BLOCK, 1);
    });
  }, 20);
  poll.unref();
}

export const stages = [defineStage({
  name: 'held',
  options: z.boolean(),
  build: () => (next) => (req) => {
    if (req.path.endsWith('/crash')) setImmediate(() => { throw new Error('held-worker-module: a bug nothing caught'); });
    return defer(async () => {
      while (flags !== undefined && Atomics.load(flags, HOLD_REQUEST) === 0) await sleep(20);
    }).pipe(switchMap(() => next(req)));
  },
})];
