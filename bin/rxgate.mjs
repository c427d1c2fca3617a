#!/usr/bin/env node
// rxgate's command line. Registers tsx so the TypeScript sources run as they
// are (no build step), then hands over to pipeline.ts.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../pipeline.ts');
await main(process.argv.slice(2));
