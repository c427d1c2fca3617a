#!/usr/bin/env node
// rxgate's command line: the compiled package in dist/ (`npm run build`; a
// clone builds it on `npm install` through `prepare`). No loader, no
// esbuild: TypeScript pipelines of your own run with `rxgate/register` on
// Node 20 or Node's own type stripping on 22.6+ (see README, Install).
let cli;
try {
  cli = await import('../dist/cli.js');
} catch (err) {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('/dist/cli.js')) {
    process.stderr.write('rxgate: dist/ is missing; build it with `npm run build` (npm install runs it in a clone)\n');
    process.exit(1);
  }
  throw err;
}
// Worker threads (--workers) import `module` for a pipeline: the package's
// own entry has none, so they use the default one, as this thread does.
await cli.runCli(process.argv.slice(2), { module: new URL('../dist/index.js', import.meta.url).href });
