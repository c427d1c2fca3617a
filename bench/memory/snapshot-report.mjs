// Compares two heap snapshots (promoted.sh with PROMOTED_SNAPSHOT: the first
// idle after the warm-up, the second under load) and prints what the second
// holds more of, grouped by kind and by what holds it (retainer's class or
// name, and the edge), so objects that outlive a request show their owner:
//   node bench/memory/snapshot-report.mjs idle.heapsnapshot load.heapsnapshot [top]
import { readFileSync } from 'node:fs';

function load(file) {
  const s = JSON.parse(readFileSync(file, 'utf8'));
  const m = s.snapshot.meta;
  const nf = m.node_fields.length, ef = m.edge_fields.length;
  const nTypes = m.node_types[0], eTypes = m.edge_types[0];
  const N = s.nodes, E = s.edges, S = s.strings;
  const iType = m.node_fields.indexOf('type'), iName = m.node_fields.indexOf('name'), iSize = m.node_fields.indexOf('self_size'), iEc = m.node_fields.indexOf('edge_count');
  const count = N.length / nf;
  const retainer = new Int32Array(count).fill(-1), via = new Array(count);
  let e = 0;
  for (let n = 0; n < count; n++) {
    const ec = N[n * nf + iEc];
    for (let k = 0; k < ec; k++, e += ef) {
      const et = eTypes[E[e]];
      if (et === 'weak' || et === 'shortcut') continue;
      const to = E[e + 2] / nf;
      if (retainer[to] === -1) {
        retainer[to] = n;
        via[to] = et === 'element' || et === 'hidden' ? `[${et}]` : String(et === 'property' || et === 'internal' || et === 'context' ? S[E[e + 1]] : E[e + 1]);
      }
    }
  }
  const kind = (n) => {
    const t = nTypes[N[n * nf + iType]];
    return t === 'string' || t === 'concatenated string' || t === 'sliced string' || t === 'number' ? t : `${t}:${S[N[n * nf + iName]].slice(0, 40)}`;
  };
  const groups = new Map();
  for (let n = 0; n < count; n++) {
    const r = retainer[n];
    const key = `${kind(n)}  <-${via[n] ?? '?'}-  ${r >= 0 ? kind(r) : '-'}`;
    const g = groups.get(key) ?? { n: 0, bytes: 0 };
    g.n++;
    g.bytes += N[n * nf + iSize];
    groups.set(key, g);
  }
  return groups;
}
const [a, b, topArg] = process.argv.slice(2);
const idle = load(a), busy = load(b);
const rows = [];
for (const [key, g] of busy) {
  const o = idle.get(key) ?? { n: 0, bytes: 0 };
  if (g.bytes - o.bytes > 0) rows.push([key, g.n - o.n, g.bytes - o.bytes]);
}
rows.sort((x, y) => y[2] - x[2]);
console.log('   +bytes   +count  kind  <-edge-  retainer');
for (const [key, n, bytes] of rows.slice(0, Number(topArg) || 40)) console.log(`${String(bytes).padStart(9)} ${String(n).padStart(8)}  ${key}`);
