import { defineStage } from '../../lib/stages/define.ts';
import { crashSpec } from './crash-stage.mjs';

/**
 * The CLI's module (lib/index.ts) plus a stage for tests of a worker that
 * crashes: with `crash: true` on a route, a request whose path ends in
 * `/crash` throws on the next loop turn, where nothing catches it (a bug in
 * a stage, a library's callback). The stage itself is in crash-stage.mjs,
 * which crash-module.dist.mjs shares for runs from dist/.
 */
export * from '../../lib/index.ts';

export const stages = [defineStage(crashSpec)];
