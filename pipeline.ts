/**
 * rxgate's default pipeline, and the runnable entry (`npm start`,
 * `npx rxgate --config FILE`).
 *
 * Every YAML route is compiled by `defaultPipeline` below into one Handler:
 * a cold Observable per request that flows through the stages top to bottom
 * and ends in `forward`, which streams the request to an upstream with undici.
 * Copy this file to build your own: reorder stages, drop some, add yours
 * (a stage is just `(next: Handler) => Handler`).
 */
import { pathToFileURL } from 'node:url';
import { compose } from './lib/compose.ts';
import { runCli } from './lib/cli.ts';
import type { PipelineFactory } from './lib/config/build.ts';
import { forward } from './lib/upstream/forward.ts';

export const defaultPipeline: PipelineFactory = ({ route, service }) =>
  compose(
    // Stages run in this order on the way in, and in reverse on the way out.
  )(forward(service, { preserveHost: route.preserveHost ?? false }));

export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  await runCli(argv, defaultPipeline, import.meta.url);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main();
}
