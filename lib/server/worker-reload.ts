import type { Worker } from 'node:worker_threads';
import type { ReloadResult, ReloadTrigger } from '../lifecycle/reload.ts';
import type { Logger } from '../observe/log.ts';
import type { PoolReloaded, WorkerQuery, WorkerReloaded } from './worker-messages.ts';

/** What `reloadEvery` needs of the pool (workers.ts). */
export interface ReloadPool {
  /** The workers serving: not exited, not draining after a crash; replacements included. */
  live(): Worker[];
  isLive(worker: Worker): boolean;
  /** A worker's answer to `query` (rejects when it exits or does not answer in time). */
  ask<T>(worker: Worker, query: Omit<WorkerQuery, 'id'>): Promise<T>;
  /** The config text each worker was started from or last applied (undefined: it read the file). */
  textOf: Map<Worker, string | undefined>;
  /** The text every worker runs (what a new worker starts from). */
  running(): string | undefined;
  setRunning(text: string): void;
  /** Runs `run` in the pool's reload queue once `worker` has started (listens) or exited. */
  later(worker: Worker, run: () => Promise<void>): void;
  logger: Logger;
}

/**
 * A reload of every worker, all or none, as nginx's and Envoy's are: each
 * worker builds `text` and serves it, held (`hold`); once all have answered,
 * each is told to keep it, or, when any refused it (or did not answer in
 * time), every one that applied it goes back to the config of before and
 * counts the reload refused too, so the workers never run two configs past
 * the reload and a replacement's text (`running`) is the one they all run.
 * Then a worker started meanwhile from the old text (a crash's replacement)
 * applies the new one before the reload answers.
 */
export async function reloadEvery(pool: ReloadPool, trigger: ReloadTrigger, text?: string): Promise<PoolReloaded> {
  const asked = pool.live();
  const staged = await Promise.allSettled(asked.map((w) => pool.ask<WorkerReloaded>(w, {
    type: 'rxgate:reload', trigger, hold: true, ...(text !== undefined ? { text } : {}),
  } as Omit<WorkerQuery, 'id'>)));
  let refusal: ReloadResult | undefined;
  const holding: Worker[] = [];
  asked.forEach((worker, i) => {
    const answer = staged[i]!;
    // A refusal counts even from a worker that crashed since: its replacement would build the same text.
    if (answer.status === 'fulfilled' && answer.value.result.outcome === 'refused') {
      refusal ??= answer.value.result;
      return;
    }
    // One that exited or crashed meanwhile is left out: it serves nothing new any more.
    if (!pool.isLive(worker)) return;
    if (answer.status === 'fulfilled') {
      holding.push(worker);
    } else {
      // Alive but silent: it may still apply it, so it is told to undo it, and the reload is not every worker's.
      refusal ??= { outcome: 'refused', message: String((answer.reason as Error)?.message ?? answer.reason) };
      holding.push(worker);
    }
  });
  if (holding.length === 0) refusal ??= { outcome: 'refused', message: 'no worker answered' };
  const keep = refusal === undefined;
  const settled = await Promise.allSettled(holding.map((w) => pool.ask<WorkerReloaded>(w, {
    type: 'rxgate:settle', keep, ...(keep ? {} : { message: refusal!.message ?? 'refused by another worker' }),
  } as Omit<WorkerQuery, 'id'>)));
  if (!keep) return { result: refusal!, config: null };
  const kept = settled.flatMap((s) => (s.status === 'fulfilled' && s.value.result.outcome === 'applied' ? [s.value] : []));
  if (text !== undefined) {
    pool.setRunning(text);
    for (const w of holding) pool.textOf.set(w, text);
  }
  await align(pool, trigger);
  return { result: kept.find((k) => k.result.message !== undefined)?.result ?? { outcome: 'applied' }, config: kept[0]?.config ?? null };
}

/**
 * Workers that started from another text than the one every worker runs
 * (during a reload) apply it. One that does not answer (still starting
 * after the 30 s limit: a slow Redis, discovery) is logged and asked again
 * once it has started, so it does not stay on the old text until the next
 * reload; it serves nothing before it listens.
 */
async function align(pool: ReloadPool, trigger: ReloadTrigger): Promise<void> {
  const running = pool.running();
  if (running === undefined) return;
  const behind = pool.live().filter((w) => pool.textOf.get(w) !== running);
  await Promise.all(behind.map((worker) => alignOne(pool, worker, trigger, true)));
}

async function alignOne(pool: ReloadPool, worker: Worker, trigger: ReloadTrigger, again: boolean): Promise<void> {
  // Read when it runs: a later reload may have brought it up to date, or changed the text.
  const running = pool.running();
  if (running === undefined || !pool.isLive(worker) || pool.textOf.get(worker) === running) return;
  try {
    const answer = await pool.ask<WorkerReloaded>(worker, { type: 'rxgate:reload', trigger, text: running } as Omit<WorkerQuery, 'id'>);
    if (answer.result.outcome === 'applied') pool.textOf.set(worker, running);
    else pool.logger.error({ worker: worker.threadId, message: answer.result.message }, 'a gateway worker started during a reload refused the config the others run');
  } catch (err) {
    if (!pool.isLive(worker)) return; // exited: it serves nothing
    pool.logger.error({ worker: worker.threadId, err, again }, again
      ? 'a gateway worker started during a reload did not apply the config the others run: asked again once it has started'
      : 'a gateway worker started during a reload did not apply the config the others run: it runs the old one until the next reload');
    if (again) pool.later(worker, () => alignOne(pool, worker, trigger, false));
  }
}
