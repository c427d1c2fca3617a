import { vi } from 'vitest';

export interface UntilOptions {
  /** How long to wait before failing, ms. Stay under the test's own timeout (30 s) so this message is the one reported. @default 5000 */
  timeout?: number;
  /** Between checks, ms. @default 5 */
  interval?: number;
}

/**
 * Waits until `ready()` holds (a state another event loop turn, server or
 * process reaches), through `vi.waitFor`: bounded by `timeout`, and failing
 * with the predicate's own source, so the report says what never happened.
 * A predicate that throws fails the wait at once (`vi.waitFor` alone would
 * retry it). For waiting on state, never for asserting a duration.
 */
export async function until(ready: () => boolean | Promise<boolean>, options: UntilOptions = {}): Promise<void> {
  const { timeout = 5000, interval = 5 } = options;
  let failed: { error: unknown } | undefined;
  await vi.waitFor(async () => {
    let done: boolean;
    try {
      done = await ready();
    } catch (error) {
      failed = { error };
      return;
    }
    if (!done) throw new Error(`still not true after ${timeout} ms: ${String(ready)}`);
  }, { timeout, interval });
  if (failed !== undefined) throw failed.error;
}
