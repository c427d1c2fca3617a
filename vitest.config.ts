import { configDefaults, defineConfig } from 'vitest/config';

// Unit and property files that start a uWS server or a gateway: uWS is a native module with process-wide
// state (its loop, what it read when it loaded), so they run with the integration files, which start
// servers and close them file by file (until session 8 each in a process of its own).
const WITH_UWS = [
  'test/unit/config-auth-keys.test.ts',
  'test/unit/edge-abort-watch.test.ts',
  'test/unit/exchange.test.ts',
  'test/unit/head-rules.test.ts',
  'test/unit/limits-cores.test.ts',
  'test/unit/response-head.test.ts',
  'test/unit/response-writer-drain.test.ts',
  'test/unit/response-writer-tick.test.ts',
  'test/unit/uws-loader.test.ts',
  'test/property/http-fuzz.test.ts',
];

// Integration files that change process-wide state their hooks cannot undo: a process of their own.
// pool-probe-p9 patches undici's Pool for the whole process and keeps every pool it sees (review RB).
const ISOLATED = ['test/integration/uws.test.ts', 'test/unit/pool-probe-p9.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Most files wait on sockets, timers and child processes: two at a time on a 2-core machine took
    // the suite from 341 s to 221 s (vitest's default here is one, cores − 1). Three since session 11: the
    // clean-clone run of 5e3e560 had two files running all along (521 s of file time in 275.5 s) and used
    // ~400 of the 2 × 275 core-seconds (432 s user+sys at load 15), so a third file runs in what the waiting
    // leaves idle: 185-221 s for 330-440 s of CPU, from the CI run's per-file times (docs/testing.md). A
    // fourth adds nothing once the CPU is all used.
    maxWorkers: 3,
    reporters: ['default'],
    projects: [
      // The other unit and property files share their worker processes (isolate: false): a new process per
      // file cost more than most of these files' tests (import 297 s of the 67 files' 365 s, and 88 of 117).
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/property/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...WITH_UWS, ...ISOLATED],
          isolate: false,
        },
      },
      // Integration files share their worker processes as well (session 9): each file starts and closes its
      // own servers, gateways and processes, and loading vitest, undici, ioredis, pino, zod and lib/ again for
      // each of ~110 files was most of their import phase (24 files side by side: import 351 -> 77 s, CPU
      // 64.5 -> 24.5 s). A file that changes process-wide state it cannot undo in its hooks (vi.mock of a
      // shared module, an environment variable read when a module loads) needs a project with isolate: true.
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts', ...WITH_UWS], exclude: [...configDefaults.exclude, ...ISOLATED], isolate: false } },
      // uws.test.ts loads uWS afresh with vi.resetModules(), which empties the module registry for every later file in a
      // shared worker (review RS: they imported lib/ again, a second copy of every module-level cache).
      { extends: true, test: { name: 'isolated', include: ISOLATED, isolate: true } },
    ],
  },
});
