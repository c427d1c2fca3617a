// Imported: the global `performance` is an accessor, which every `now()` called through V8's global load IC.
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { asyncScheduler, type SchedulerAction, type SchedulerLike, type Subscription } from 'rxjs';

/**
 * Where time and chance come from. Every stage, store and probe gets one,
 * so a gateway (YAML-built included) runs on virtual time in tests: pass
 * `virtualRuntime(scheduler)` with an RxJS `TestScheduler` or
 * `VirtualTimeScheduler`.
 */
export interface Runtime {
  /** Runs delays and periodic work (backoff waits, timeouts, probes, breaker resets). */
  readonly scheduler: SchedulerLike;
  /** Monotonic time in ms (durations, deadlines, token buckets). */
  now(): number;
  /** Wall-clock ms since the epoch (`Retry-After` dates, JWT `exp`, HTTP dates). */
  wallNow(): number;
  /** Uniform in [0, 1) (jitter, sampling). */
  random(): number;
}

/** The real thing: the async scheduler, `performance.now()`, `Date.now()`, `Math.random()`. */
export const systemRuntime: Runtime = {
  scheduler: asyncScheduler,
  now: () => performance.now(),
  wallNow: () => Date.now(),
  random: Math.random,
};

/**
 * A runtime whose clocks are `scheduler.now()` (wall time starts at
 * `epoch`), for tests on virtual time. `random` defaults to a fixed sequence
 * so runs repeat.
 */
export function virtualRuntime(scheduler: SchedulerLike, options: { epoch?: number; random?: () => number } = {}): Runtime {
  const epoch = options.epoch ?? Date.UTC(2026, 0, 1);
  return {
    scheduler,
    now: () => scheduler.now(),
    wallNow: () => epoch + scheduler.now(),
    random: options.random ?? seeded(1),
  };
}

/** Runs `work` every `periodMs` on the runtime's scheduler until unsubscribed. */
export function every(runtime: Runtime, periodMs: number, work: () => void): Subscription {
  return runtime.scheduler.schedule(function tick(this: SchedulerAction<undefined>) {
    work();
    this.schedule(undefined, periodMs);
  }, periodMs);
}

/** Runs `work` once after `delayMs` on the runtime's scheduler, unless unsubscribed first. */
export function after(runtime: Runtime, delayMs: number, work: () => void): Subscription {
  return runtime.scheduler.schedule(work, delayMs < 0 ? 0 : delayMs);
}

/** A small deterministic generator (mulberry32) for virtual runs. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * V8 flags the gateway's process sets when the CLI starts (`runCli`), before
 * it serves; V8 reads each where it acts, so setting it at run time acts
 * (test/integration/gc-flags.test.ts watches both).
 * - `--no-parallel-scavenge` (read at every collection): a scavenge runs on
 *   the main thread alone instead of waiting, in its pause, for helper
 *   threads that share the cores with the main thread, the upstream and the
 *   clients (docs/gc-promotion.md, "The pause, phase by phase").
 * - `--max-valid-polymorphic-map-count=16` (V8's default is 4; read each
 *   time an inline cache takes another map): a property read or write seen
 *   with more classes than that goes megamorphic for good, through V8's
 *   stub cache. The subscriber bases' methods (lib/inner-subscriber.ts)
 *   serve every stage's subscriber class: seven built in, with a user's own
 *   stages more, and a fifth class anywhere in the process cost every route
 *   ~0.8 µs per request on the policies route in one process
 *   (docs/performance-policies.md, eleventh round).
 */
export const gatewayV8Flags: readonly string[] = ['--no-parallel-scavenge', '--max-valid-polymorphic-map-count=16'];

/**
 * Sets `flags` except those node's own command line or `NODE_OPTIONS` names
 * either way (`node --parallel-scavenge bin/rxgate.mjs …` keeps V8's default),
 * and returns the ones it set. V8's flags are the process's: worker threads
 * share them.
 */
export function setGatewayV8Flags(flags: readonly string[] = gatewayV8Flags, given: readonly string[] = nodeFlagsGiven()): string[] {
  const named = new Set(given.map(flagName));
  const set = flags.filter((flag) => !named.has(flagName(flag)));
  for (const flag of set) setFlagsFromString(flag);
  return set;
}

/** `--no-parallel_scavenge=…` → `parallel-scavenge`. */
function flagName(flag: string): string {
  return flag.replace(/^--(no-?)?/, '').split('=')[0]!.replaceAll('_', '-');
}

function nodeFlagsGiven(): string[] {
  return [...process.execArgv, ...(process.env['NODE_OPTIONS'] ?? '').split(/\s+/)].filter((arg) => arg.startsWith('--'));
}
