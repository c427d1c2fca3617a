// Sums a .heapprofile written by promoted-probe.mjs by allocation site:
//   node bench/memory/promoted-report.mjs file.heapprofile [requests] [top]
// Each row: sampled bytes (per request when `requests` is given), the
// allocating frame, and the nearest caller in this repository's code (dist/ or
// lib/), which is usually the line to change.
import { readFileSync } from 'node:fs';

const [file, reqArg, topArg] = process.argv.slice(2);
const profile = JSON.parse(readFileSync(file, 'utf8'));
const requests = Number(reqArg) || 1;
const top = Number(topArg) || 30;
const short = (f) => `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|dist|lib|bench)\//, '$1/').replace(/^file:\/\//, '')}:${f.lineNumber + 1}`;
const ours = (f) => /\/(dist|lib)\//.test(f.url) && !/node_modules/.test(f.url);
const rows = new Map();
let total = 0;
(function walk(node, stack) {
  const frame = node.callFrame;
  const here = [...stack, frame];
  if (node.selfSize > 0) {
    total += node.selfSize;
    const own = [...here].reverse().find(ours);
    const key = `${short(frame)}  <=  ${own ? short(own) : '-'}`;
    rows.set(key, (rows.get(key) ?? 0) + node.selfSize);
  }
  for (const child of node.children) walk(child, here);
})(profile.head, []);
console.log(`sampled, survived the young generation: ${(total / requests).toFixed(0)} B/request`);
for (const [key, bytes] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`${(bytes / requests).toFixed(1).padStart(8)}  ${key}`);
