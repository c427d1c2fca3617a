// A preload that keeps plain data live, to ask whether a mark-compact's
// pause grows with the live heap alone (docs/gc-promotion.md, thirteenth
// round): `node --import=file:///…/bench/memory/ballast.mjs?mib=11 …` keeps
// ~11 MiB of small objects, arrays and strings (heapUsed after full
// collections, as module-heap.mjs counts) for the life of the process,
// the shapes a loaded module's data has, none of it code.
const mib = Number(new URL(import.meta.url).searchParams.get('mib') ?? 10);
const target = process.memoryUsage().heapUsed + mib * 1048576;
const kept = [];
globalThis.__ballast = kept;
while (process.memoryUsage().heapUsed < target) {
  for (let i = 0; i < 1000; i++) kept.push({ id: kept.length, name: `item-${kept.length}`, tags: [i, i + 1], next: null });
}
