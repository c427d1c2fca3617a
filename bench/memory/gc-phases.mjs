// What a GC pause consists of: reads `--trace-gc-nvp` logs and prints, per
// target and per kind (mark-compact, scavenge), the pause distribution and
// the phases that make it: each top-level phase's median and max (with its
// children's), and the phase breakdown of the longest pauses. Files named
// `<target>-<round>.log` (the measured windows `KEEP=<dir> NVP=1
// bench/memory/ab.sh …` keeps) are taken together per target, with the
// mark-compacts and the longest pause of each round; lines before the first
// N ms of a process (`--from-ms N`) are skipped.
//   node bench/memory/gc-phases.mjs [--from-ms 4000] [--top 5] /tmp/keep/full-*.log /tmp/keep/floor-*.log
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const opt = (name, dflt) => { const i = args.indexOf(name); if (i < 0) return dflt; const v = Number(args[i + 1]); args.splice(i, 2); return v; };
const fromMs = opt('--from-ms', 0);
const top = opt('--top', 5);

// The pause's own parts, as V8 names them (children such as evacuate.copy are shown under their parent).
const PHASES = {
  mc: ['time_to_safepoint', 'heap.prologue', 'heap.embedder_tracing_epilogue', 'heap.epilogue', 'heap.external.prologue', 'heap.external.epilogue',
    'heap.external.weak_global_handles', 'prologue', 'mark', 'clear', 'evacuate', 'sweep', 'finish', 'epilogue',
    'complete.sweeping', 'complete.sweep_array_buffers', 'finish.sweep_array_buffers'],
  s: ['time_to_safepoint', 'heap.prologue', 'heap.epilogue', 'heap.external.prologue', 'heap.external.epilogue',
    'heap.external_weak_global_handles', 'fast_promote', 'complete.sweep_array_buffers', 'scavenge'],
};
const CHILDREN = {
  mark: ['mark.finish_incremental', 'mark.roots', 'mark.full_closure_parallel', 'mark.full_closure', 'mark.ephemeron.marking', 'mark.embedder_tracing'],
  evacuate: ['evacuate.prologue', 'evacuate.copy', 'evacuate.update_pointers', 'evacuate.rebalance', 'evacuate.clean_up', 'evacuate.epilogue'],
  clear: ['clear.external_string_table', 'clear.weak_global_handles', 'clear.dependent_code', 'clear.maps', 'clear.weak_collections', 'clear.weak_lists', 'clear.weak_references', 'clear.join_job'],
  scavenge: ['scavenge.roots', 'scavenge.parallel', 'scavenge.weak_global_handles.identify', 'scavenge.weak_global_handles.process', 'scavenge.update_refs', 'scavenge.sweep_array_buffers', 'scavenge.free_remembered_set'],
};

const q = (xs, p) => { if (!xs.length) return NaN; const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))]; };
const f = (x) => (Number.isNaN(x) ? '-' : x.toFixed(1));

const groups = new Map();
for (const file of args) {
  const name = file.replace(/^.*\//, '').replace(/(-\d+)?\.log$/, '');
  if (!groups.has(name)) groups.set(name, []);
  groups.get(name).push(file);
}
for (const [name, files] of groups) {
  const gcs = { mc: [], s: [] };
  const rounds = [];
  for (const file of files) {
    const round = { mc: 0, max: 0 };
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /\s(\d+) ms: (pause=.*)$/.exec(line);
      if (!m || Number(m[1]) < fromMs) continue;
      const v = { at: Number(m[1]) };
      for (const kv of m[2].split(' ')) { const i = kv.indexOf('='); if (i > 0) v[kv.slice(0, i)] = kv.slice(i + 1); }
      if (v.gc !== 'mc' && v.gc !== 's') continue;
      gcs[v.gc].push(v);
      if (v.gc === 'mc') round.mc++;
      round.max = Math.max(round.max, Number(v.pause));
    }
    rounds.push(round);
  }
  console.log(`== ${name} (${files.length} file(s)); per file: mark-compacts ${rounds.map((r) => r.mc).join(', ')}; longest pause ${rounds.map((r) => f(r.max)).join(', ')} ms`);
  for (const kind of ['mc', 's']) {
    const list = gcs[kind];
    if (!list.length) continue;
    const pauses = list.map((v) => Number(v.pause));
    console.log(`${kind === 'mc' ? 'mark-compacts' : 'scavenges'}: ${list.length}; pause median ${f(q(pauses, 0.5))}, p90 ${f(q(pauses, 0.9))}, p99 ${f(q(pauses, 0.99))}, max ${f(Math.max(...pauses))} ms; over 5 ms: ${pauses.filter((p) => p > 5).length}`);
    const rows = PHASES[kind].map((ph) => [ph, list.map((v) => Number(v[ph] ?? 0))]).filter(([, xs]) => Math.max(...xs) >= 0.05);
    console.log(`  phase                      median    max   (children: median/max)`);
    for (const [ph, xs] of rows) {
      const kids = (CHILDREN[ph] ?? []).map((c) => [c, list.map((v) => Number(v[c] ?? 0))]).filter(([, ys]) => Math.max(...ys) >= 0.1)
        .map(([c, ys]) => `${c.slice(ph.length + 1)} ${f(q(ys, 0.5))}/${f(Math.max(...ys))}`).join(', ');
      console.log(`  ${ph.padEnd(26)} ${f(q(xs, 0.5)).padStart(6)} ${f(Math.max(...xs)).padStart(6)}   ${kids}`);
    }
    const longest = [...list].sort((a, b) => Number(b.pause) - Number(a.pause)).slice(0, top);
    for (const v of longest) {
      const parts = PHASES[kind].filter((ph) => Number(v[ph] ?? 0) >= 0.3).map((ph) => `${ph} ${v[ph]}`).join(', ');
      const extra = kind === 'mc' ? ` copy ${v['evacuate.copy']} upd ${v['evacuate.update_pointers']} bg.mark ${v['background.mark']} bg.copy ${v['background.evacuate.copy']}` : ` bg ${v['background.scavenge.parallel']}`;
      console.log(`  at ${v.at} ms pause ${v.pause}: ${parts};${extra}; ${(Number(v.total_size_before) / 2 ** 20).toFixed(1)} -> ${(Number(v.total_size_after) / 2 ** 20).toFixed(1)} MB`);
    }
  }
}
