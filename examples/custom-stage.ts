/**
 * rxgate with a stage of your own, named from YAML:
 *
 *   node --import ./bin/loader/register.mjs examples/custom-stage.ts -c examples/custom-stage.yaml
 *
 * (uses the demo upstreams: start `npm start` in another shell, or point the
 * YAML's URLs at your services). Worker threads import this module for its
 * `defaultPipeline` and `stages` exports, hence the `isMainThread` guard.
 */
import { isMainThread } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { runCli } from '../lib/index.ts';
import { requireHeader } from './require-header.ts';

export { defaultPipeline } from '../pipeline.ts';
export const stages = [requireHeader];

if (isMainThread && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await runCli(process.argv.slice(2), { stages, module: import.meta.url });
}
