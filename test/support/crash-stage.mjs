// The crash stage's spec, in JavaScript so that both entries can share it: crash-module.ts (the
// sources, through the loader) and crash-module.dist.mjs (dist/, no loader), as rxgate-process.ts
// starts rxgate from one or the other.
import { z } from 'zod';

export const crashSpec = {
  name: 'crash',
  options: z.boolean(),
  build: () => (next) => (req) => {
    if (req.path.endsWith('/crash')) setImmediate(() => { throw new Error('a bug nothing caught'); });
    return next(req);
  },
};
