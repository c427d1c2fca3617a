import { silentLogger, type Logger } from '../../lib/observe/log.ts';
import { startWorkers, type WorkerData, type WorkerPool } from '../../lib/server/workers.ts';
import { BLOCK, heldData, HOLD_REQUEST, HOLD_START, release } from './held-worker-module.ts';
import { freePort } from './global-setup.ts';

const HELD = new URL('./held-worker-module.ts', import.meta.url).href;

/**
 * A pool of 2 workers on held-worker-module.ts whose slot `slot` the test
 * holds through `flags`, logging to `logger`, listening on `port` (a route /api/* through the
 * `held` stage to `upstream`). `stop` lets go of every hold and stops it.
 */
export async function startHeldPool(slot: number, logger: Logger = silentLogger, upstream = 'http://127.0.0.1:9'): Promise<{ pool: WorkerPool; flags: Int32Array; port: number; stop(): Promise<void> }> {
  const { flags, data } = heldData(slot);
  const config = `log: { level: error }\nservices: { s: { upstreams: ["${upstream}"] } }\nroutes: [{ path: /api/*, service: s, pipeline: [held], held: true }, { path: /*, service: s }]\n`;
  const port = await freePort();
  const pool = startWorkers(2, {
    argv: ['--config', '/nonexistent.yaml', '--port', String(port), '--host', '127.0.0.1'],
    pipelineModule: HELD,
    configText: config,
    ...data,
  } as WorkerData, logger);
  const stop = async (): Promise<void> => {
    release(flags, BLOCK, 2);
    release(flags, HOLD_START, 0);
    release(flags, HOLD_REQUEST, 1);
    pool.broadcast('stop');
    await pool.exited;
  };
  return { pool, flags, port, stop };
}
