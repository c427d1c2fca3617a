// Worker threads do not inherit the main thread's module hooks: register the
// TypeScript loader here, then run the TypeScript worker entry.
import '../../bin/loader/register.mjs';

await import('./worker-main.ts');
