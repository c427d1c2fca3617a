import { z } from 'zod';
import { defineStage } from '../../lib/stages/define.ts';

/**
 * The CLI's module (lib/index.ts) plus a stage for tests of a worker that
 * crashes: with `crash: true` on a route, a request whose path ends in
 * `/crash` throws on the next loop turn, where nothing catches it (a bug in
 * a stage, a library's callback).
 */
export * from '../../lib/index.ts';

export const stages = [defineStage({
  name: 'crash',
  options: z.boolean(),
  build: () => (next) => (req) => {
    if (req.path.endsWith('/crash')) setImmediate(() => { throw new Error('a bug nothing caught'); });
    return next(req);
  },
})];
