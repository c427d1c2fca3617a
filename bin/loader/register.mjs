// Runs TypeScript files on Node 20: `node --import rxgate/register my-pipeline.ts`
// (in a clone: `node --import ./bin/loader/register.mjs file.ts`). Needs
// esbuild installed beside it (a dev dependency of your project).
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
