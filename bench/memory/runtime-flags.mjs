// Preload (`node --import 'file:///…/runtime-flags.mjs?--flag1,--flag2=3' …`):
// sets V8 flags with v8.setFlagsFromString while the process starts, the way a
// gateway can set them at start-up, so an A/B shows whether a flag still acts
// when set at run time rather than on node's command line. Prints
// `RUNTIME_FLAGS <flags>` to stderr so a trace shows which run is which.
import { setFlagsFromString } from 'node:v8';

const flags = decodeURIComponent(new URL(import.meta.url).search.slice(1)).split(',').filter(Boolean);
for (const flag of flags) setFlagsFromString(flag);
process.stderr.write(`RUNTIME_FLAGS ${flags.join(' ') || '(none)'}\n`);
