// Entry of one gateway worker thread (see workers.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { gatewayPageData } from '../admin/page.ts';
import { runCli } from '../cli.ts';
import type { PipelineFactory } from '../config/build.ts';
import { controlKeys } from '../lifecycle/controls.ts';
import type { Served } from '../lifecycle/serve.ts';
import type { StageDefinition } from '../stages/define.ts';
import type { WorkerData, WorkerQuery, WorkerReloaded, WorkerReply } from './worker-messages.ts';

const data = workerData as WorkerData;
const mod = (await import(data.pipelineModule)) as { defaultPipeline?: PipelineFactory; stages?: StageDefinition[] };
// What serves this thread's gateway (its Reloader, its drain), as the CLI built it.
let served: { served: Served; drain: () => Promise<unknown> } | null = null;
const gateway = await runCli(data.argv, {
  ...(mod.defaultPipeline !== undefined ? { pipeline: mod.defaultPipeline } : {}),
  stages: mod.stages ?? [],
  onServed: (s, drain) => { served = { served: s, drain }; },
  ...(data.configText !== undefined ? { configText: data.configText } : {}),
});
const port = parentPort;
if (gateway !== null && served !== null && port !== null) {
  const { served: own, drain } = served as { served: Served; drain: () => Promise<unknown> };
  const page = gatewayPageData(gateway);

  const answer = async (query: WorkerQuery): Promise<unknown> => {
    switch (query.type) {
      case 'rxgate:metrics': return gateway.metrics.registry.getMetricsAsJSON();
      case 'rxgate:overview': return page.overview();
      case 'rxgate:windows': return page.windows(query.seconds);
      case 'rxgate:reload': {
        const result = await own.reload(query.trigger, query.text);
        return { result, config: controlKeys(own.reloader.current) } satisfies WorkerReloaded;
      }
    }
  };
  // The main thread's word: queries (metrics, the admin page's data, a
  // reload) get a reply with their id; `drain` finishes what is in flight
  // (within the config's drain.timeout, as the CLI's own drain) and `stop`
  // closes now. Either closes the listen socket and the upstream pools so
  // this thread's loop empties and the worker exits by itself (terminating
  // a thread that still has uWS sockets aborts the process).
  port.on('message', (msg: WorkerQuery | 'drain' | 'stop') => {
    if (msg === 'stop') {
      void gateway.close().finally(() => port.close());
    } else if (msg === 'drain') {
      void drain().finally(() => port.close());
    } else if (typeof msg === 'object' && msg !== null && typeof msg.id === 'number') {
      answer(msg).then(
        (value) => port.postMessage({ type: 'rxgate:reply', id: msg.id, value } satisfies WorkerReply),
        (err: unknown) => port.postMessage({ type: 'rxgate:reply', id: msg.id, error: String((err as Error)?.message ?? err) } satisfies WorkerReply),
      );
    }
  });
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
    void drain().finally(() => port.close());
  });
  port.postMessage({ type: 'rxgate:ready', id: 0 } satisfies WorkerReply);
}
