import { trace } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { flushTraces } from '../../lib/lifecycle/signals.ts';

/** A tracer provider that is not the no-op one, with the `forceFlush` a test gives it. */
function register(forceFlush: () => unknown): void {
  class ThrowingFlushProvider {
    getTracer() { return trace.getTracerProvider().getTracer('x'); }
    forceFlush = forceFlush;
  }
  trace.setGlobalTracerProvider(new ThrowingFlushProvider() as never);
}

describe('flushTraces', () => {
  afterEach(() => trace.disable());

  it('settles when the provider\'s forceFlush throws at once, returns no Promise, or rejects (review RD 7: an unhandled rejection, exit 1)', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown) => unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (const flush of [() => { throw new Error('sync'); }, () => 42, () => Promise.reject(new Error('async'))]) {
        trace.disable();
        register(flush);
        await expect(flushTraces(1000)).resolves.toBeUndefined();
      }
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('waits for a flush that settles, and at most timeoutMs for one that never does', async () => {
    let flushed = false;
    register(() => new Promise<void>((r) => setTimeout(() => { flushed = true; r(); }, 20)));
    await flushTraces(5000);
    expect(flushed).toBe(true);
    trace.disable();
    register(() => new Promise<never>(() => {}));
    await expect(flushTraces(50)).resolves.toBeUndefined();
  });
});
