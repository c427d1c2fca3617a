// Preloaded into every Node target (`node --import bench/gc-probe.mjs …`):
// counts the garbage collections V8 reports through perf_hooks, and on
// SIGUSR2 prints what happened since the previous SIGUSR2 as one line,
//   BENCH_GC {"seq":3,"scavenges":812,"markCompacts":2,"maxMarkCompactMs":1.9,...}
// then starts counting afresh. The harness sends one SIGUSR2 before a round
// and one after it. Plain JS: it runs before any TypeScript loader.
// GC_PROBE_EACH=1 also prints every mark-compact entry as it lands
// (`BENCH_MC <ms since start> <duration ms>`), to line it up with --trace-gc.
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  const fresh = () => ({ scavenges: 0, markCompacts: 0, incremental: 0, pauseMs: 0, maxPauseMs: 0, maxMarkCompactMs: 0 });
  let counts = fresh();
  let seq = 0;
  const each = process.env.GC_PROBE_EACH === '1';
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = entry.detail?.kind;
      const ms = entry.duration;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) counts.scavenges++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
        counts.markCompacts++;
        if (each) process.stderr.write(`BENCH_MC ${entry.startTime.toFixed(1)} ${ms.toFixed(2)}\n`);
        if (ms > counts.maxMarkCompactMs) counts.maxMarkCompactMs = ms;
      } else if (kind === constants.NODE_PERFORMANCE_GC_INCREMENTAL) counts.incremental++;
      counts.pauseMs += ms;
      if (ms > counts.maxPauseMs) counts.maxPauseMs = ms;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  process.on('SIGUSR2', () => {
    // Entries are delivered on a later tick: let the ones already queued land first.
    setImmediate(() => {
      seq++;
      const heap = process.memoryUsage();
      process.stderr.write(`BENCH_GC ${JSON.stringify({ seq, ...counts, heapUsed: heap.heapUsed, rss: heap.rss })}\n`);
      counts = fresh();
    });
  });
  // The probe must never keep a target alive on its own.
  observer.unref?.();
}
