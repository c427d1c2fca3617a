/**
 * rxgate's default pipeline, and the runnable entry (`npm start`,
 * `npx rxgate --config FILE`).
 *
 * Every YAML route is compiled by `defaultPipeline` below into one Handler: a
 * cold Observable per request that flows through the route's stages in
 * order and ends in `forward`, which streams the request to an upstream with
 * undici. The order is the route's `pipeline:` list, else the top-level one,
 * else the built-in order:
 *
 *   ipFilter → cors → auth → rateLimit → maxBodySize → compression → (your stages) → cache → mirror → timeout
 *   → adaptiveConcurrency → retry → hedge → circuitBreaker → attemptTimeout → forward
 *
 * Copy this file to build your own: register stages of your own in `stages`
 * (see examples/require-header.ts; YAML then names them), or replace
 * `defaultPipeline` (a stage is just `(next: Handler) => Handler`), then run
 * it with `node --import ./bin/loader/register.mjs my-pipeline.ts --config gateway.yaml`.
 */
import { pathToFileURL } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { compose } from './lib/compose.ts';
import { runCli } from './lib/cli.ts';
import type { PipelineFactory } from './lib/config/build.ts';
import type { StageDefinition } from './lib/stages/define.ts';

/** Each route: its stages in order (`ctx.stage(name)` builds one with the route's options), then forward. */
export const defaultPipeline: PipelineFactory = (ctx) =>
  compose(...ctx.pipeline.map((name) => ctx.stage(name)))(ctx.forward());

/** Stages of your own, usable by name from YAML (`defineStage`). */
export const stages: StageDefinition[] = [];

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  await runCli(argv, { pipeline: defaultPipeline, stages, module: import.meta.url });
}

// Worker threads (`--workers`) import this module for its exports only.
if (isMainThread && import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main();
}
