import { VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { virtualRuntime } from '../../lib/runtime.ts';
import { BodyGap } from '../../lib/upstream/body-gap.ts';

/** The body gap limit on virtual time. */

function clock() {
  const vts = new VirtualTimeScheduler(undefined, 0);
  return {
    runtime: virtualRuntime(vts),
    advanceTo(ms: number): void {
      vts.maxFrames = ms;
      vts.flush();
      vts.frame = Math.max(vts.frame, ms);
    },
  };
}

describe('BodyGap', () => {
  it('fires once the body has been quiet for the limit, counting from the last chunk', () => {
    const c = clock();
    let fired = 0;
    const gap = new BodyGap(c.runtime, 1000, () => fired++);
    c.advanceTo(700);
    gap.touch();
    c.advanceTo(1699);
    expect(fired).toBe(0);
    c.advanceTo(1700);
    expect(fired).toBe(1);
  });

  it('does not count time while the client holds the body back', () => {
    const c = clock();
    let fired = 0;
    const gap = new BodyGap(c.runtime, 1000, () => fired++);
    gap.hold(true);
    c.advanceTo(5000);
    expect(fired).toBe(0);
    gap.hold(false);
    c.advanceTo(5999);
    expect(fired).toBe(0);
    c.advanceTo(7000);
    expect(fired).toBe(1);
  });

  it('never fires once stopped', () => {
    const c = clock();
    let fired = 0;
    new BodyGap(c.runtime, 1000, () => fired++).stop();
    c.advanceTo(10_000);
    expect(fired).toBe(0);
  });
});
