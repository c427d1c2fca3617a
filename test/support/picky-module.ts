import { threadId } from 'node:worker_threads';
import { z } from 'zod';
import { defineStage } from '../../lib/stages/define.ts';
import { stages as crashStages } from './crash-module.ts';

/**
 * crash-module's stages plus `picky`: a route with `picky: N` is refused
 * (a TypeError when the route is built, as a stage refuses its options) in
 * the worker thread whose threadId is N and built everywhere else: one
 * config text that one worker of a pool refuses and the others apply (a
 * file one thread cannot read, a Redis one cannot reach).
 */
export * from '../../lib/index.ts';

export const stages = [...crashStages, defineStage({
  name: 'picky',
  options: z.number().int(),
  build: (refusedIn) => {
    if (threadId === refusedIn) throw new TypeError(`picky: refused in worker thread ${threadId}`);
    return (next) => next;
  },
})];
