import { Worker } from 'node:worker_threads';
import type { Logger } from '../observe/log.ts';

export interface WorkerData {
  /** Arguments for the worker's own `runCli` (config file, port…). */
  argv: string[];
  /** Module whose `defaultPipeline` export builds each route's handler. */
  pipelineModule: string;
}

/**
 * Runs the gateway on `count` worker threads that all listen on the same
 * port: uWS opens its listen sockets with SO_REUSEPORT on Linux, so the
 * kernel spreads connections across the threads. Each worker builds its own
 * gateway from the same config; in-memory state (rate limits, cache,
 * breakers, metrics) is per worker — use the Redis stores for shared limits.
 */
export function startWorkers(count: number, data: WorkerData, logger: Logger): Worker[] {
  const workers: Worker[] = [];
  for (let i = 0; i < count; i++) {
    const worker = new Worker(new URL('./worker-entry.mjs', import.meta.url), { workerData: data });
    worker.on('error', (err) => logger.error({ err, worker: i }, 'gateway worker failed'));
    worker.on('exit', (code) => {
      if (code !== 0) logger.error({ worker: i, code }, 'gateway worker exited');
    });
    workers.push(worker);
  }
  return workers;
}
