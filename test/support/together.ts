/**
 * Scenarios started all at once and awaited one per test. Vitest runs at most `maxConcurrency` (5) tests at a time,
 * `it.concurrent` ones included, so seven cases that each wait on uWS 20.30's ~10 s idle or head timer took two
 * rounds of it; registered with `add` and started together by `start()` (at the end of the file's beforeAll) they
 * wait once, and each test still asserts its own scenario: `it('…', slow.add(async () => { … }))`.
 */
export interface Together {
  /** Registers `run` and returns what the test runs: it awaits `run`'s promise, started by `start()`. */
  add<T>(run: () => Promise<T>): () => Promise<T>;
  /** Starts every scenario registered. */
  start(): void;
  /** Resolves once every scenario started has settled (in afterAll, before closing what they use). */
  settled(): Promise<void>;
}

export function together(): Together {
  const toStart: Array<() => void> = [];
  const running: Array<Promise<unknown>> = [];
  return {
    add<T>(run: () => Promise<T>): () => Promise<T> {
      let result: Promise<T> | undefined;
      toStart.push(() => {
        result = run();
        // Awaited by its test later; a rejection before then is not an unhandled one.
        result.catch(() => undefined);
        running.push(result);
      });
      return () => result ?? Promise.reject(new Error('together(): the scenario was never started (start() not called)'));
    },
    start() {
      for (const start of toStart.splice(0)) start();
    },
    async settled() {
      await Promise.allSettled(running);
    },
  };
}
