// V8 heap a module keeps once imported: heapUsed after 12 forced full
// collections, with the module against without (forced collections do not
// flush bytecode: this is what a module holds once loaded). `node --expose-gc
// bench/memory/module-heap.mjs <specifier>…`; each figure is what that
// module adds to those before it (docs/gc-promotion.md "Tenth round").
const settle = () => { for (let i = 0; i < 12; i++) global.gc(); return process.memoryUsage().heapUsed; };
const mods = process.argv.slice(2);
const base = settle();
let last = base;
for (const m of mods) {
  await import(m.startsWith('/') || m.startsWith('.') ? new URL(m, `file://${process.cwd()}/`).href : m);
  const now = settle();
  console.log(m.padEnd(40), ((now - last) / 1048576).toFixed(2), 'MiB');
  last = now;
}
console.log('total'.padEnd(40), ((last - base) / 1048576).toFixed(2), 'MiB');
