// crash-module.ts on the compiled package: the module worker-crash's rxgate processes run with when
// they start from dist/ (test/support/rxgate-process.ts, CLI_FROM).
import { defineStage } from '../../dist/index.js';
import { crashSpec } from './crash-stage.mjs';

export * from '../../dist/index.js';

export const stages = [defineStage(crashSpec)];
