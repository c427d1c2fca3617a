/**
 * rxgate's default pipeline, and the runnable entry (`npm start`,
 * `npx rxgate --config FILE`).
 *
 * Every YAML route is compiled by `defaultPipeline` below into one Handler: a
 * cold Observable per request that flows through the stages top to bottom and
 * ends in `forward`, which streams the request to an upstream with undici.
 * Copy this file to build your own: reorder stages, drop some, add yours (a
 * stage is just `(next: Handler) => Handler`), then run it with
 * `node --import ./bin/loader/register.mjs my-pipeline.ts --config gateway.yaml`.
 */
import { pathToFileURL } from 'node:url';
import { compose } from './lib/compose.ts';
import { runCli } from './lib/cli.ts';
import type { PipelineFactory } from './lib/config/build.ts';
import {
  attemptTimeoutStage, authStage, bodyLimitStage, breakerStage, cacheStage, instanceBreakers,
  rateLimitStage, retryStage, totalTimeoutStage,
} from './lib/config/stages.ts';
import { forward } from './lib/upstream/forward.ts';

export const defaultPipeline: PipelineFactory = (ctx) =>
  compose(
    authStage(ctx),          // 401/403 before anything else runs   (route `auth`)
    rateLimitStage(ctx),     // 429 once the caller is known         (route `rateLimit`)
    bodyLimitStage(ctx),     // 413 for request bodies over the limit (`maxBodySize`)
    cacheStage(ctx),         // answer from cache, or coalesce misses (route `cache`)
    totalTimeoutStage(ctx),  // 504 for all attempts together        (`timeouts.total`)
    retryStage(ctx),         // re-subscribe what follows on failure (`retry`)
    breakerStage(ctx),       // 503 at once while the service is sick (`circuitBreaker`)
    attemptTimeoutStage(ctx),// 504 for one attempt                  (`timeouts.perAttempt`)
  )(forward(ctx.service, {
    preserveHost: ctx.route.preserveHost ?? false,
    ...instanceBreakers(ctx),   // one breaker per instance, with `perInstance: true`
  }));

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  await runCli(argv, defaultPipeline, import.meta.url);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main();
}
