// Types for lib/server/worker-entry.mjs, which imports this for its side effect;
// with it tsc does not try to compile the loader into dist/.
export {};
