// Entry of one gateway worker thread (see workers.ts).
import { parseArgs } from 'node:util';
import { parentPort, workerData } from 'node:worker_threads';
import { gatewayPageData } from '../admin/page.ts';
import { runCli } from '../cli.ts';
import type { PipelineFactory } from '../config/build.ts';
import { loadConfig } from '../config/load.ts';
import { parseDuration } from '../duration.ts';
import { DRAIN_TIMEOUT } from '../lifecycle/schema.ts';
import { Reloader, type ReloadTrigger } from '../lifecycle/reload.ts';
import type { StageDefinition } from '../stages/define.ts';
import type { WorkerData, WorkerQuery, WorkerReply } from './workers.ts';

const data = workerData as WorkerData;
const mod = (await import(data.pipelineModule)) as { defaultPipeline?: PipelineFactory; stages?: StageDefinition[] };
const stages = mod.stages ?? [];
const gateway = await runCli(data.argv, {
  ...(mod.defaultPipeline !== undefined ? { pipeline: mod.defaultPipeline } : {}),
  stages,
});
const port = parentPort;
if (gateway !== null && port !== null) {
  const file = parseArgs({ args: data.argv, options: { config: { type: 'string', short: 'c' } }, strict: false }).values.config;
  const load = () => loadConfig(String(file), process.env, stages);
  const reloader = typeof file === 'string' ? new Reloader({ gateway, config: load(), load }) : null;
  const page = gatewayPageData(gateway);

  const answer = async (query: WorkerQuery): Promise<unknown> => {
    switch (query.type) {
      case 'rxgate:metrics': return gateway.metrics.registry.getMetricsAsJSON();
      case 'rxgate:overview': return page.overview();
      case 'rxgate:windows': return page.windows(query.seconds);
      case 'rxgate:reload': return reloader === null
        ? { outcome: 'refused', message: 'started without a config file: nothing to reload' }
        : reloader.reload(query.trigger);
    }
  };
  // The main thread's word: queries (metrics, the admin page's data, a
  // reload) get a reply with their id; `drain` finishes what is in flight
  // and `stop` closes now. Either closes the listen socket and the upstream
  // pools so this thread's loop empties and the worker exits by itself
  // (terminating a thread that still has uWS sockets aborts the process).
  port.on('message', (msg: WorkerQuery | 'reload' | 'drain' | 'stop') => {
    if (msg === 'stop') {
      void gateway.close().finally(() => port.close());
    } else if (msg === 'drain') {
      const timeout = reloader?.current.drain?.timeout ?? DRAIN_TIMEOUT;
      void gateway.drain(parseDuration(timeout, 'drain.timeout')).finally(() => port.close());
    } else if (msg === 'reload') {
      void reloader?.reload('signal' satisfies ReloadTrigger);
    } else if (typeof msg === 'object' && msg !== null && typeof msg.id === 'number') {
      answer(msg).then(
        (value) => port.postMessage({ type: 'rxgate:reply', id: msg.id, value } satisfies WorkerReply),
        (err: unknown) => port.postMessage({ type: 'rxgate:reply', id: msg.id, error: String((err as Error)?.message ?? err) } satisfies WorkerReply),
      );
    }
  });
  port.postMessage({ type: 'rxgate:ready', id: 0 } satisfies WorkerReply);
}
