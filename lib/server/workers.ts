import { Worker } from 'node:worker_threads';
import { Registry } from 'prom-client';
import type { AdminPageData, Overview } from '../admin/page.ts';
import type { SeriesWindow } from '../admin/series.ts';
import type { ReloadResult, ReloadTrigger } from '../lifecycle/reload.ts';
import { ServedCertificates } from '../observe/certificates.ts';
import type { Logger } from '../observe/log.ts';
import { after, systemRuntime } from '../runtime.ts';
import { mergeOverviews, mergeRouteWindows } from './worker-overview.ts';
import type { ListenAnswer, PoolReloaded, WorkerCommand, WorkerData, WorkerListening, WorkerQuery, WorkerReloaded, WorkerReply } from './worker-messages.ts';
import { reloadEvery } from './worker-reload.ts';
import { PoolMetrics, type MetricJson } from './worker-retired.ts';
import { RestartBackoff } from './worker-restarts.ts';

export type { PoolReloaded, WorkerCommand, WorkerData, WorkerQuery, WorkerReloaded, WorkerReply } from './worker-messages.ts';

/** The gateway's worker threads, seen as one gateway by the admin listener. */
export interface WorkerPool extends AdminPageData {
  /** The workers not yet exited. */
  readonly workers: readonly Worker[];
  /** The config text a replacement of a crashed worker builds from: the one the workers last applied. */
  setConfigText(text: string): void;
  /** The Prometheus text of the whole process: every worker's metrics added up. */
  metrics(): Promise<string>;
  /** The content type of `metrics()`. */
  readonly contentType: string;
  /** Tells every worker: `reload` its config, `drain` (finish in flight, then exit), `stop` (close now). */
  broadcast(msg: WorkerCommand): void;
  /** Every worker reloads its config; refused if any worker refused (its message), else applied. */
  reload(trigger: ReloadTrigger, text?: string): Promise<ReloadResult>;
  /** `reload`, with the keys of the config the workers serve since (what the main thread's watch, drain and log level follow). */
  reloadAll(trigger: ReloadTrigger, text?: string): Promise<PoolReloaded>;
  /** Settles when every worker listens (or has exited). */
  readonly ready: Promise<void>;
  /** Settles when every worker has exited (a crashed worker's replacement included). */
  readonly exited: Promise<void>;
}

/** The longest a listening worker may take to answer a query, ms. */
const QUERY_TIMEOUT_MS = 5000; // 5s
/** A reload may wait for new services' discovery or Redis first. */
const RELOAD_TIMEOUT_MS = 30_000; // 30s

/**
 * Runs the gateway on `count` worker threads that all listen on the same
 * port: uWS opens its listen sockets with SO_REUSEPORT on Linux, so the
 * kernel spreads connections across the threads. Each worker builds its own
 * gateway from the same config; in-memory state (rate limits, cache,
 * breakers) is per worker — use the Redis stores for shared limits.
 * Metrics and the admin page's data are asked of every worker and added up
 * (prom-client's `AggregatorRegistry.aggregate()`), so they answer for the
 * whole process whichever thread took a connection.
 */
export function startWorkers(count: number, data: WorkerData, logger: Logger): WorkerPool {
  /** The workers not yet exited, replacements included. */
  const workers: Worker[] = [];
  const live = new Set<Worker>();
  /** Settles when the worker listens or exits: queries wait for it (start-up can take seconds). */
  const started = new Map<Worker, Promise<void>>();
  /** When each worker listened (a crash soon after delays the next start of its slot). */
  const listenedAt = new Map<Worker, number>();
  /** Workers whose crash has started (or scheduled) their one replacement. */
  const replaced = new WeakSet<Worker>();
  const backoff = new RestartBackoff(() => systemRuntime.now());
  /** Replacements waiting out their delay. */
  const waiting = new Set<{ unsubscribe(): void }>();
  const pending = new Map<number, { worker: Worker; resolve(v: unknown): void; reject(e: Error): void }>();
  /** The config text each worker started from or last applied (worker-reload.ts brings one started mid-reload up to date). */
  const textOf = new Map<Worker, string | undefined>();
  /** Reloads run one after the other. */
  let reloads: Promise<unknown> = Promise.resolve();
  const counts = new PoolMetrics((w) => live.has(w));
  /** What the workers serve: the certificate-expiry lines are logged here, once per change, not by each worker. */
  const certificates = new ServedCertificates<Worker>(logger, () => systemRuntime.wallNow());
  let nextId = 1;
  /** Set once the workers are told to drain or stop: a crashed worker is then not replaced. */
  let told = false;
  /** What a replacement builds from: the config the workers last applied (setConfigText). */
  let configText = data.configText;
  let allExited!: () => void;
  const exited = new Promise<void>((resolve) => { allExited = resolve; });
  const settle = (): void => { if (live.size === 0 && waiting.size === 0) allExited(); };
  const replace = (worker: Worker, i: number): void => {
    // Once per worker, however many exceptions it throws while it drains.
    if (told || replaced.has(worker)) return;
    replaced.add(worker);
    const delay = backoff.next(i, listenedAt.get(worker));
    if (delay === 0) {
      workers.push(spawn(i));
      return;
    }
    logger.warn({ worker: i, delayMs: delay }, 'gateway worker crashed soon after it started: its replacement waits');
    const timer = after(systemRuntime, delay, () => {
      waiting.delete(timer);
      if (!told) workers.push(spawn(i));
      settle();
    });
    waiting.add(timer);
  };
  const spawn = (i: number): Worker => {
    const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), {
      workerData: { ...data, slot: i, pool: true, ...(configText !== undefined ? { configText } : {}) } satisfies WorkerData,
    });
    live.add(worker);
    textOf.set(worker, configText);
    worker.on('error', (err) => logger.error({ err, worker: i }, 'gateway worker failed'));
    started.set(worker, new Promise<void>((resolve) => {
      worker.once('exit', () => resolve());
      worker.on('message', (msg: WorkerReply) => {
        if (msg?.type !== 'rxgate:ready') return;
        listenedAt.set(worker, systemRuntime.now());
        certificates.served(worker, (msg.value as WorkerListening | undefined)?.certificates);
        resolve();
      });
    }));
    worker.on('message', (msg: WorkerReply) => {
      if (msg?.type === 'rxgate:may-listen') {
        // Once the gateway stops, a worker still starting (a crash's replacement) exits without listening.
        if (told) logger.info({ worker: i }, 'gateway worker not started: the gateway is stopping');
        worker.postMessage({ type: 'rxgate:listen', ok: !told } satisfies ListenAnswer);
        return;
      }
      if (msg?.type === 'rxgate:crashed') {
        // The worker drains and ends (worker-main.ts); one like it takes its place, as nginx's master respawns a worker.
        logger.error({ worker: i, err: msg.error, replaced: !told && !replaced.has(worker) }, 'gateway worker crashed: it finishes its requests in flight and exits');
        certificates.gone(worker);
        replace(worker, i);
        return;
      }
      if (msg?.type === 'rxgate:final') {
        counts.final(worker, msg.value as MetricJson[]);
        return;
      }
      if (msg?.type !== 'rxgate:reply') return;
      const p = pending.get(msg.id);
      if (p === undefined) return;
      pending.delete(msg.id);
      if (msg.error !== undefined) p.reject(new Error(msg.error));
      else p.resolve(msg.value);
    });
    worker.once('exit', (code) => {
      live.delete(worker);
      textOf.delete(worker);
      certificates.gone(worker);
      // Its questions will not be answered: they fail now, not at their timeout.
      for (const [id, p] of pending) {
        if (p.worker !== worker) continue;
        pending.delete(id);
        p.reject(new Error(`worker ${worker.threadId} has exited`));
      }
      started.delete(worker);
      listenedAt.delete(worker);
      const at = workers.indexOf(worker);
      if (at >= 0) workers.splice(at, 1);
      if (code !== 0) logger.error({ worker: i, code }, 'gateway worker exited');
      counts.retire();
      settle();
    });
    return worker;
  };
  for (let i = 0; i < count; i++) workers.push(spawn(i));
  const ready = Promise.all(started.values()).then(() => undefined);

  const ask = async <T>(worker: Worker, query: Omit<WorkerQuery, 'id'>): Promise<T> => {
    const reload = query.type === 'rxgate:reload' || query.type === 'rxgate:settle';
    // The limit counts from the ask, start-up included: a drain may wait on a reload's answer, and a scrape or the
    // admin page must not wait out a replacement's slow start (Redis, discovery) for every worker's series (review RJ, M2).
    const limit = reload ? RELOAD_TIMEOUT_MS : QUERY_TIMEOUT_MS;
    const since = systemRuntime.now();
    let timer: { unsubscribe(): void } | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = after(systemRuntime, limit, () => reject(new Error(`worker ${worker.threadId} did not start within ${limit} ms`)));
    });
    try {
      await Promise.race([started.get(worker), expired]);
    } finally {
      timer?.unsubscribe();
    }
    if (!live.has(worker)) throw new Error(`worker ${worker.threadId} has exited`);
    const left = limit - (systemRuntime.now() - since);
    // A scrape says until when it waits: a worker blocked past that does not collect (and reset its lag window) for nothing.
    const asked = query.type === 'rxgate:metrics' ? { ...query, before: systemRuntime.wallNow() + left } : query;
    const answer = await answerOf<T>(worker, asked, left);
    if (!reload) return answer;
    // What it serves since (a held reload's answer has none yet: its settle's has).
    if (!replaced.has(worker)) certificates.served(worker, (answer as WorkerReloaded).certificates, false);
    return answer;
  };
  const answerOf = <T>(worker: Worker, query: Omit<WorkerQuery, 'id'>, limit: number): Promise<T> => new Promise<T>((resolve, reject) => {
    const id = nextId++;
    const timer = after(systemRuntime, Math.max(0, limit), () => {
      pending.delete(id);
      reject(new Error(`worker ${worker.threadId} did not answer ${query.type} within ${limit} ms`));
    });
    pending.set(id, {
      worker,
      resolve: (v) => { timer.unsubscribe(); resolve(v as T); },
      reject: (e) => { timer.unsubscribe(); reject(e); },
    });
    worker.postMessage({ ...query, id });
  });
  /** Every live worker's answer (one that exits meanwhile is left out). */
  const askAll = async <T>(query: Omit<WorkerQuery, 'id'>): Promise<T[]> => {
    const answers = await Promise.allSettled([...live].map((w) => ask<T>(w, query)));
    return answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
  };

  // `text`: the config every worker applies (read once by the main thread), else each reads the file. One at a time.
  const reloadAll = (trigger: ReloadTrigger, text?: string): Promise<PoolReloaded> => {
    const run = reloads.then(() => reloadEvery({
      live: () => [...live].filter((w) => !replaced.has(w)),
      isLive: (w) => live.has(w) && !replaced.has(w),
      ask,
      textOf,
      running: () => configText,
      setRunning: (t) => { configText = t; },
      // Queued once it listens (not before: a later reload would wait for its start).
      later: (w, fn) => void started.get(w)?.then(() => { reloads = reloads.then(fn).catch(() => undefined).finally(() => certificates.show()); }),
      logger,
    }, trigger, text)).finally(() => certificates.show()); // the expiry lines once per reload, from every worker's answer
    reloads = run.catch(() => undefined);
    return run;
  };

  return {
    workers,
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    metrics: () => counts.scrape([...live], (w) => ask<MetricJson[]>(w, { type: 'rxgate:metrics' }), (w, err) => logger.warn({ thread: w.threadId, err }, 'gateway worker left out of this /metrics scrape: its series are missing from it')),
    async overview(): Promise<Overview> {
      return mergeOverviews(await askAll<Overview>({ type: 'rxgate:overview' }));
    },
    async windows(seconds: number) {
      return mergeRouteWindows(await askAll<Record<string, SeriesWindow>>({ type: 'rxgate:windows', seconds } as Omit<WorkerQuery, 'id'>));
    },
    reload: async (trigger, text) => (await reloadAll(trigger, text)).result,
    reloadAll,
    broadcast(msg) {
      told = true;
      for (const t of waiting) t.unsubscribe();
      waiting.clear();
      for (const w of live) w.postMessage(msg);
      settle();
    },
    setConfigText(text) {
      configText = text;
    },
    ready,
    exited,
  };
}
