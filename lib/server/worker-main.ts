// Entry of one gateway worker thread (see workers.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { runCli } from '../cli.ts';
import type { PipelineFactory } from '../config/build.ts';
import type { StageDefinition } from '../stages/define.ts';
import type { WorkerData } from './workers.ts';

const data = workerData as WorkerData;
const mod = (await import(data.pipelineModule)) as { defaultPipeline?: PipelineFactory; stages?: StageDefinition[] };
const gateway = await runCli(data.argv, {
  ...(mod.defaultPipeline !== undefined ? { pipeline: mod.defaultPipeline } : {}),
  ...(mod.stages !== undefined ? { stages: mod.stages } : {}),
});
// Stop on the main thread's word: close the listen socket and the upstream
// pools so this thread's loop empties and the worker exits by itself
// (terminating a thread that still has uWS sockets aborts the process).
parentPort?.on('message', (msg) => {
  if (msg === 'stop') {
    void gateway?.close().finally(() => parentPort?.close());
  }
});
