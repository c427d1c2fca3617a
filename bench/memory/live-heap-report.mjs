// What a heap snapshot from live-heap.mjs holds, by what owns it:
//   node --max-old-space-size=4000 bench/memory/live-heap-report.mjs <file.heapsnapshot> [top]
// Each reachable object's self size is charged to its nearest dominator
// that belongs to a package: a closure, its context, its shared function
// info or its script, by the script's URL (rxjs, zod, undici, node:, the
// gateway's dist/ folders); "(unowned) <type>" is what no such dominator
// holds (code objects, maps, internalized strings…; "native" is off-heap
// memory, the cache's slabs among it). Sizes with object counts: marking
// costs per object more than per byte. Then the largest classes by self size.
// docs/gc-promotion.md, thirteenth round.
import { readFileSync } from 'node:fs';

const [file, topArg] = process.argv.slice(2);
const top = Number(topArg ?? 25);
const { snapshot: { meta }, nodes: N, edges: E, strings: S } = JSON.parse(readFileSync(file, 'utf8'));
const [nf, ef] = [meta.node_fields.length, meta.edge_fields.length];
const [nTypes, eTypes] = [meta.node_types[0], meta.edge_types[0]];
const [iType, iName, iSize, iEc] = ['type', 'name', 'self_size', 'edge_count'].map((f) => meta.node_fields.indexOf(f));
const count = N.length / nf;
const type = (n) => nTypes[N[n * nf + iType]];
const name = (n) => S[N[n * nf + iName]];
const self = (n) => N[n * nf + iSize];
const first = new Uint32Array(count + 1);
for (let n = 0, e = 0; n < count; n++) { first[n] = e; e += N[n * nf + iEc] * ef; }
first[count] = E.length;

// The package a script's URL names.
const pkg = (url) => {
  if (url.startsWith('node:')) return 'node:';
  const nm = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  // zod's locales apart: every one is loaded (its index re-exports them all), one is used
  if (nm) return url.includes('/zod/v4/locales/') ? 'zod (locales)' : nm[1];
  const d = url.match(/\/dist\/(.*)\.js$/);
  if (d) return `rxgate ${d[1].split('/').slice(0, d[1].startsWith('stages/') ? 2 : 1).join('/')}`;
  return url === '' ? '' : 'other';
};
// Scripts (their source strings), shared function infos and closures are owned by the package
// their script's URL names; a closure's context by its closure's package.
const owner = new Array(count).fill('');
const scriptOf = (sfi) => {
  for (let f = first[sfi]; f < first[sfi + 1]; f += ef) if (S[E[f + 1]] === 'script_or_debug_info') return E[f + 2] / nf;
  return -1;
};
for (let n = 0; n < count; n++) {
  if (type(n) !== 'closure') continue;
  for (let e = first[n]; e < first[n + 1]; e += ef) {
    if (S[E[e + 1]] !== 'shared') continue;
    const sfi = E[e + 2] / nf, sc = scriptOf(sfi);
    if (sc < 0) continue;
    const p = pkg(name(sc));
    if (p === '') continue;
    owner[n] = owner[sfi] = owner[sc] = p;
    for (let f = first[n]; f < first[n + 1]; f += ef) if (S[E[f + 1]] === 'context') { const c = E[f + 2] / nf; if (owner[c] === '') owner[c] = p; }
  }
}
// Dominators (Cooper, Harvey, Kennedy) over a reverse postorder from the root (node 0).
const order = new Int32Array(count).fill(-1), post = [];
{
  const stack = [0], it = [first[0]]; order[0] = 0;
  while (stack.length) {
    const n = stack[stack.length - 1];
    let e = it[it.length - 1];
    let pushed = false;
    for (; e < first[n + 1]; e += ef) {
      const et = eTypes[E[e]];
      if (et === 'weak' || et === 'shortcut') continue;
      const to = E[e + 2] / nf;
      if (order[to] === -1) { order[to] = 0; it[it.length - 1] = e + ef; stack.push(to); it.push(first[to]); pushed = true; break; }
    }
    if (!pushed) { stack.pop(); it.pop(); post.push(n); }
  }
}
const rpo = new Int32Array(count).fill(-1);
post.reverse().forEach((n, i) => { rpo[n] = i; });
const preds = Array.from({ length: count }, () => []);
for (let n = 0; n < count; n++) {
  if (rpo[n] < 0) continue;
  for (let e = first[n]; e < first[n + 1]; e += ef) {
    const et = eTypes[E[e]];
    if (et === 'weak' || et === 'shortcut') continue;
    preds[E[e + 2] / nf].push(n);
  }
}
const idom = new Int32Array(count).fill(-1); idom[0] = 0;
const intersect = (a, b) => { while (a !== b) { while (rpo[a] > rpo[b]) a = idom[a]; while (rpo[b] > rpo[a]) b = idom[b]; } return a; };
for (let changed = true; changed;) {
  changed = false;
  for (const n of post) {
    if (n === 0) continue;
    let d = -1;
    for (const p of preds[n]) if (idom[p] !== -1) d = d === -1 ? p : intersect(p, d);
    if (d !== -1 && idom[n] !== d) { idom[n] = d; changed = true; }
  }
}
// Charge each reachable object to its nearest owned dominator (or itself).
const charge = new Map(), objects = new Map();
let total = 0;
for (const n of post) {
  let d = n;
  while (owner[d] === '' && d !== 0) d = idom[d];
  const k = owner[d] || `(unowned) ${type(n)}`;
  charge.set(k, (charge.get(k) ?? 0) + self(n));
  objects.set(k, (objects.get(k) ?? 0) + 1);
  total += self(n);
}
const mib = (b) => (b / 1048576).toFixed(2);
console.log(`reachable ${mib(total)} MiB in ${post.length} objects`);
console.log('    MiB objects  owner');
for (const [k, v] of [...charge].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(mib(v).padStart(7), String(objects.get(k)).padStart(7), '', k);
const byClass = new Map();
for (const n of post) { const k = `${type(n)} ${type(n) === 'object' || type(n) === 'closure' ? name(n) : ''}`; byClass.set(k, (byClass.get(k) ?? 0) + self(n)); }
console.log('--- by class (self)');
for (const [k, v] of [...byClass].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(mib(v).padStart(7), k);
