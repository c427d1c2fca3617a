// What a running gateway keeps live (issue 10, 4c: a mark-compact's pause
// grows with it). Preload into a target (`node --expose-gc
// --import=…/bench/memory/live-heap.mjs …`); on SIGUSR2 it runs 12 full
// collections and prints heapUsed, each space's used size and the code and
// bytecode V8 reports, to stderr; with LIVE_HEAP_SNAPSHOT=<dir> it then
// writes a heap snapshot there for `live-heap-report.mjs`.
import { getHeapCodeStatistics, getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8';
import { join } from 'node:path';

let n = 0;
process.on('SIGUSR2', () => {
  for (let i = 0; i < 12; i++) globalThis.gc();
  const mib = (b) => (b / 1048576).toFixed(2);
  const spaces = getHeapSpaceStatistics().map((s) => `${s.space_name.replace('_space', '')} ${mib(s.space_used_size)}`).join(', ');
  const code = getHeapCodeStatistics();
  process.stderr.write(`live-heap ${process.pid}: heapUsed ${mib(process.memoryUsage().heapUsed)} MiB; ${spaces}; bytecode+metadata ${mib(code.bytecode_and_metadata_size)}\n`);
  const dir = process.env.LIVE_HEAP_SNAPSHOT;
  if (dir !== undefined) writeHeapSnapshot(join(dir, `live-${process.pid}-${n++}.heapsnapshot`));
});
