#!/usr/bin/env node
// rxgate's command line. Registers a small esbuild loader so the TypeScript
// sources run as they are (no build step), then hands over to pipeline.ts.
import './loader/register.mjs';

const { main } = await import('../pipeline.ts');
await main(process.argv.slice(2));
