// Entry of one gateway worker thread (see workers.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { gatewayPageData } from '../admin/page.ts';
import { runCli } from '../cli.ts';
import type { PipelineFactory } from '../config/build.ts';
import { controlKeys } from '../lifecycle/controls.ts';
import { FLUSH_TIMEOUT, flushTraces } from '../lifecycle/signals.ts';
import type { ReloadResult, StagedReload } from '../lifecycle/reload.ts';
import type { Served } from '../lifecycle/serve.ts';
import { Resources } from '../resources/registry.ts';
import { systemRuntime } from '../runtime.ts';
import type { StageDefinition } from '../stages/define.ts';
import type { ListenAnswer, WorkerData, WorkerListening, WorkerQuery, WorkerReloaded, WorkerReply } from './worker-messages.ts';
import type { MetricJson } from './worker-retired.ts';
import { workerMetrics } from './worker-runtime.ts';

const data = workerData as WorkerData;
const port = parentPort!;
/** `drain` or `stop` told while the gateway was still starting: acted on once it serves. */
let early: 'drain' | 'stop' | null = null;
let onMessage: ((msg: WorkerQuery | 'drain' | 'stop') => void) | null = null;
let listenAnswer: ((ok: boolean) => void) | null = null;
port.on('message', (msg: WorkerQuery | ListenAnswer | 'drain' | 'stop') => {
  if (typeof msg === 'object' && msg?.type === 'rxgate:listen') listenAnswer?.(msg.ok);
  else if (onMessage !== null) onMessage(msg);
  else if (msg === 'drain' || msg === 'stop') early ??= msg;
});

class NotListening extends Error {}
/**
 * The last step before the gateway listens (after Redis and discovery):
 * asks the main thread, which says no once the gateway is stopping, so a
 * replacement still starting at SIGTERM never takes connections (it used to
 * listen, then drain at once). Asked once; a reload's `ready()` is not.
 */
class GatedResources extends Resources {
  private asked = false;
  override async ready(): Promise<void> {
    await super.ready();
    if (this.asked) return;
    this.asked = true;
    const ok = await new Promise<boolean>((resolve) => {
      listenAnswer = resolve;
      port.postMessage({ type: 'rxgate:may-listen', id: 0 } satisfies WorkerReply);
    });
    listenAnswer = null;
    if (!ok) throw new NotListening('the gateway is stopping');
  }
}
const resources = new GatedResources();

const mod = (await import(data.pipelineModule)) as { defaultPipeline?: PipelineFactory; stages?: StageDefinition[] };
// What serves this thread's gateway (its Reloader, its drain), as the CLI built it.
let served: { served: Served; drain: () => Promise<unknown> } | null = null;
let gateway: Awaited<ReturnType<typeof runCli>>;
try {
  gateway = await runCli(data.argv, {
    ...(mod.defaultPipeline !== undefined ? { pipeline: mod.defaultPipeline } : {}),
    stages: mod.stages ?? [],
    onServed: (s, drain) => { served = { served: s, drain }; },
    ...(data.configText !== undefined ? { configText: data.configText } : {}),
    resources,
  });
} catch (err) {
  if (!(err instanceof NotListening)) throw err;
  // Built, never listened: what the build opened closes, and the thread ends (the main thread logs it).
  await resources.close().catch(() => undefined);
  port.close();
  process.exit(0);
}
if (gateway !== null && served !== null) {
  const { served: own, drain } = served as { served: Served; drain: () => Promise<unknown> };
  const page = gatewayPageData(gateway);
  /** A reload built and serving that the main thread has yet to keep or undo (`hold`). */
  let held: StagedReload | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn);
    queue = run.catch(() => undefined);
    return run;
  };

  const answer = async (query: WorkerQuery): Promise<unknown> => {
    switch (query.type) {
      // Read after the scrape gave up on it (this thread was blocked past its limit): collecting would reset the
      // event-loop lag window that holds the stall, for an answer the main thread drops (review RJ, M1).
      case 'rxgate:metrics': if (query.before !== undefined && systemRuntime.wallNow() > query.before) return null;
        // Its own runtime metrics labelled by its slot; none once it drains after a crash (its replacement has the slot).
        return workerMetrics((await gateway.metrics.registry.getMetricsAsJSON()) as unknown as MetricJson[], crashed ? null : String(data.slot ?? 0));
      case 'rxgate:overview': return page.overview();
      case 'rxgate:windows': return page.windows(query.seconds);
      // One at a time: a held reload waits for its settle before the next.
      case 'rxgate:reload': return serially(async () => {
        if (query.hold !== true) {
          const result = await own.reload(query.trigger, query.text);
          return { result, config: controlKeys(own.reloader.current), certificates: gateway.servedCertificates } satisfies WorkerReloaded;
        }
        held = await own.reloader.stage(query.trigger, query.text);
        return { result: held.result, config: controlKeys(held.config ?? own.reloader.current) } satisfies WorkerReloaded;
      });
      case 'rxgate:settle': return serially(async () => {
        const staged = held;
        held = null;
        const result: ReloadResult = staged === null ? { outcome: 'refused', message: 'no reload to settle' }
          : query.keep ? staged.commit() : await staged.revert(query.message ?? 'refused by another worker');
        // The certificates serving once settled (a commit takes new files over: reload.ts's applied, reloadTls).
        return { result, config: controlKeys(own.reloader.current), certificates: gateway.servedCertificates } satisfies WorkerReloaded;
      });
    }
  };
  // The main thread's word: queries (metrics, the admin page's data, a
  // reload) get a reply with their id; `drain` finishes what is in flight
  // (within the config's drain.timeout, as the CLI's own drain) and `stop`
  // closes now. Either closes the listen socket and the upstream pools so
  // this thread's loop empties and the worker exits by itself (terminating
  // a thread that still has uWS sockets aborts the process).
  onMessage = (msg) => {
    if (msg === 'stop') {
      // At once (a second signal, or the drain's backstop), yet what it cut off is traced: the flush, at most 2 s.
      void gateway.close().finally(() => flushTraces(FLUSH_TIMEOUT)).finally(() => port.close());
    } else if (msg === 'drain') {
      // This thread's tracing SDK (the preload runs in each) exports what it holds, as the CLI's main thread does.
      void drain().then(() => flushTraces(FLUSH_TIMEOUT)).finally(() => port.close());
    } else if (typeof msg === 'object' && msg !== null && typeof msg.id === 'number') {
      answer(msg).then(
        (value) => port.postMessage({ type: 'rxgate:reply', id: msg.id, value } satisfies WorkerReply),
        (err: unknown) => port.postMessage({ type: 'rxgate:reply', id: msg.id, error: String((err as Error)?.message ?? err) } satisfies WorkerReply),
      );
    }
  };
  if (early !== null) onMessage(early);
  // An exception nothing caught would end this thread with its uWS sockets
  // open, and Node aborts the whole process for that: every worker's
  // connections lost at once. Instead the main thread hears of it (and starts
  // another worker), and this one stops listening, lets its requests in
  // flight finish within drain.timeout, and ends as a drained worker does.
  let crashed = false;
  // Told once: the main thread replaces a worker per message. Later ones, while it drains, are only logged.
  process.on('uncaughtException', (err: unknown) => {
    if (crashed) {
      gateway.logger.error({ err }, 'gateway worker: another uncaught exception while it drains after a crash');
      return;
    }
    port.postMessage({ type: 'rxgate:crashed', id: 0, error: err instanceof Error ? err.stack ?? err.message : String(err) } satisfies WorkerReply);
    crashed = true;
    // Its last counts go to the main thread, which keeps them in the process totals (workers.ts).
    void drain().then(() => flushTraces(FLUSH_TIMEOUT)).finally(async () => {
      try {
        port.postMessage({ type: 'rxgate:final', id: 0, value: await gateway.metrics.registry.getMetricsAsJSON() } satisfies WorkerReply);
      } finally {
        port.close();
      }
    });
  });
  port.postMessage({ type: 'rxgate:ready', id: 0, value: { certificates: gateway.servedCertificates } satisfies WorkerListening } satisfies WorkerReply);
}
