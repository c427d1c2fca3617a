// Entry of one gateway worker thread (see workers.ts).
//
// Worker threads do not inherit the main thread's module hooks (an --import
// preload does run here again). The TypeScript loader is registered only when
// this thread loads TypeScript: rxgate's own sources (this file beside
// worker-main.ts, not its build in dist/), or a pipeline module that is a .ts
// file, as the loader itself tells one (bin/loader/typescript.mjs). From
// dist/ it cost ~0.2 s of CPU per worker for nothing (docs/workers.md has the
// measurement): its hooks thread, and a round trip to it for each of the
// ~1,000 modules loaded.
import { existsSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

// Imported when it runs: a static import brings bin/ into tsc's build of lib/ (it would write it out).
const { isTypeScript } = await import('../../bin/loader/typescript.mjs');
if (existsSync(new URL('./worker-main.ts', import.meta.url)) || isTypeScript(String(workerData?.pipelineModule ?? ''))) {
  await import('../../bin/loader/register.mjs');
}
await import('./worker-main.ts');
