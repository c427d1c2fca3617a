import type { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { reloadEvery, type ReloadPool } from '../../lib/server/worker-reload.ts';

// Fake workers, each answering a held reload, a settle and a plain reload (align) as scripted.
interface Fake {
  name: string;
  hold: 'applied' | 'refused';
  /** How it answers an align: `timeout` is a replacement not started within the ask limit. */
  plain?: 'applied' | 'timeout';
  alive: boolean;
  /** It crashes right after answering its held reload. */
  crashesAfterHold?: boolean;
}

function fakePool(serving: Fake[], everyOne: Fake[] = serving) {
  const errors: string[] = [];
  const asked: string[] = [];
  const queued: Array<{ worker: Fake; run: () => Promise<void> }> = [];
  const textOf = new Map<Worker, string | undefined>(everyOne.map((w) => [w as unknown as Worker, 'old']));
  let running: string | undefined = 'old';
  const pool: ReloadPool = {
    live: () => serving.filter((w) => w.alive) as unknown as Worker[],
    isLive: (w) => (w as unknown as Fake).alive,
    textOf,
    running: () => running,
    setRunning: (t) => { running = t; },
    later: (w, run) => { queued.push({ worker: w as unknown as Fake, run }); },
    logger: { error: (_: unknown, msg: string) => errors.push(msg), info() {}, warn() {} } as never,
    ask: async <T>(w0: Worker, q: { type: string; hold?: boolean; keep?: boolean }): Promise<T> => {
      const w = w0 as unknown as Fake;
      asked.push(`${w.name} ${q.type}${q.hold === true ? ' hold' : ''}${q.keep !== undefined ? ` keep=${q.keep}` : ''}`);
      if (q.type === 'rxgate:settle') return { result: { outcome: q.keep === true ? 'applied' : 'refused' }, config: null } as T;
      if (q.hold === true) {
        if (w.crashesAfterHold === true) w.alive = false;
        return { result: { outcome: w.hold, ...(w.hold === 'refused' ? { message: `${w.name} refused` } : {}) }, config: {} } as T;
      }
      if (w.plain === 'timeout') throw new Error(`worker ${w.name} did not start within 30000 ms`);
      return { result: { outcome: 'applied' }, config: {} } as T;
    },
  };
  return { pool, errors, asked, queued, textOf, running: () => running };
}

describe('reloadEvery', () => {
  it('a replacement that has not started within the limit when it is aligned is logged and aligned once it has started (RR2 #3)', async () => {
    const A: Fake = { name: 'A', hold: 'applied', alive: true };
    const R: Fake = { name: 'R', hold: 'applied', plain: 'timeout', alive: true };
    const serving = [A];
    const f = fakePool(serving, [A, R]);
    // R, a crash's replacement started from the old text, appears while the held reload runs.
    const ask = f.pool.ask;
    f.pool.ask = async (w, q) => { if (!serving.includes(R)) serving.push(R); return ask(w, q); };
    const out = await reloadEvery(f.pool, 'admin', 'new');
    expect(out.result.outcome).toBe('applied');
    expect(f.textOf.get(A as never)).toBe('new');
    expect(f.errors).toEqual(['a gateway worker started during a reload did not apply the config the others run: asked again once it has started']);
    expect(f.queued.map((q) => q.worker)).toEqual([R]);
    // R has started: the queued align applies the text the others run.
    R.plain = 'applied';
    await f.queued[0]!.run();
    expect(f.textOf.get(R as never)).toBe('new');
    expect(f.asked.filter((a) => a.startsWith('R '))).toEqual(['R rxgate:reload', 'R rxgate:reload']);
  });

  it('a replacement whose second align fails too is logged once more and not queued again', async () => {
    const A: Fake = { name: 'A', hold: 'applied', alive: true };
    const R: Fake = { name: 'R', hold: 'applied', plain: 'timeout', alive: true };
    const f = fakePool([A, R]);
    f.textOf.set(A as never, 'new'); // A already runs it; R does not
    f.pool.setRunning('new');
    await reloadEvery(f.pool, 'admin'); // no text: nothing held changes the running text
    await f.queued[0]!.run();
    expect(f.queued).toHaveLength(1);
    expect(f.errors[1]).toBe('a gateway worker started during a reload did not apply the config the others run: it runs the old one until the next reload');
    expect(f.textOf.get(R as never)).toBe('old');
  });

  it('a refusal from a worker that crashed before the settle still makes the reload refused (RR2 #3)', async () => {
    const A: Fake = { name: 'A', hold: 'applied', alive: true };
    const B: Fake = { name: 'B', hold: 'refused', alive: true, crashesAfterHold: true };
    const f = fakePool([A, B]);
    const out = await reloadEvery(f.pool, 'admin', 'new');
    expect(out.result).toEqual({ outcome: 'refused', message: 'B refused' });
    expect(f.asked).toContain('A rxgate:settle keep=false');
    expect(f.running()).toBe('old');
    expect(f.textOf.get(A as never)).toBe('old');
  });
});
