// Reads a gateway log written with --track-gc-object-stats
// --trace-gc-object-stats and PROMOTED_GC=1 (see promoted-probe.mjs) and
// prints the last mark-compact's dead objects by instance type, per request:
//   node bench/memory/dead-report.mjs gw.log requests [top]
import { readFileSync } from 'node:fs';

const [file, reqArg, topArg] = process.argv.slice(2);
const requests = Number(reqArg) || 1;
const top = Number(topArg) || 25;
const byGc = new Map();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (!line.includes('"instance_type_data"') || !line.includes('"dead"')) continue;
  const d = JSON.parse(line);
  if (!byGc.has(d.id)) byGc.set(d.id, []);
  byGc.get(d.id).push(d);
}
const last = [...byGc.values()].at(-1) ?? [];
const total = last.reduce((n, d) => n + d.overall, 0);
console.log(`died in old space: ${(total / requests).toFixed(0)} B/request (${requests} requests)`);
console.log('   B/req  obj/req  type');
for (const d of last.sort((a, b) => b.overall - a.overall).slice(0, top))
  console.log(`${(d.overall / requests).toFixed(1).padStart(8)} ${(d.count / requests).toFixed(2).padStart(8)}  ${d.instance_type_name}`);
