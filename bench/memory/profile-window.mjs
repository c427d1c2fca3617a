// Where a target's time per request goes, from a --cpu-prof profile taken
// under load (e.g. bench/memory/ab.sh … full=cfg:bench/configs/full.yaml+--cpu-prof+--cpu-prof-dir=/tmp/p):
// the profile's busiest window of SECONDS (the measured load, not the
// start-up or the idle gaps) is divided by that window's REQUESTS (ab.sh's
// figure for the round): self time per request by part of the program
// (rxgate's folders, the cache stage, rxjs, undici, node internals, native
// functions, GC), then the TOP functions.
//   node bench/memory/profile-window.mjs <file.cpuprofile> <requests> <seconds> [top]
// Wall time of the main thread, sampled: GC threads and the kernel's work
// for other threads are not in it; inlined functions count in their caller.
import { readFileSync } from 'node:fs';

const [file, requestsArg, secondsArg, topArg] = process.argv.slice(2);
if (file === undefined || requestsArg === undefined || secondsArg === undefined) {
  console.error('usage: profile-window.mjs <file.cpuprofile> <requests> <seconds> [top]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const times = [];
let at = profile.startTime;
for (const d of profile.timeDeltas) times.push((at += d));
const isIdle = (i) => nodes.get(profile.samples[i]).callFrame.functionName === '(idle)';
const span = (i) => (i + 1 < times.length ? times[i + 1] - times[i] : 0);

// The window of `seconds` with the most busy time: two pointers over the samples.
const width = Number(secondsArg) * 1e6;
let best = -1, from = 0, to = 0, busy = 0;
for (let i = 0, j = 0; i < times.length; i++) {
  for (; j < times.length && times[j] - times[i] < width; j++) busy += isIdle(j) ? 0 : span(j);
  if (busy > best) [best, from, to] = [busy, i, j];
  busy -= isIdle(i) ? 0 : span(i);
}

function part({ url, functionName }) {
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dep) return dep[1];
  if (url.includes('/stages/cache/')) return 'rxgate: cache stage';
  if (url.includes('/dist/stages/') || url.includes('/lib/stages/')) return 'rxgate: other stages';
  const own = /\/(?:dist|lib)\/([^/]+)/.exec(url);
  if (own) return `rxgate: ${own[1].replace(/\.[jt]s$/, '')}`;
  if (url.startsWith('node:')) return 'node internals';
  if (url === '') return `native: ${functionName}`;
  return url;
}

const requests = Number(requestsArg);
const parts = new Map();
const functions = new Map();
let total = 0;
for (let i = from; i < to; i++) {
  if (isIdle(i)) continue;
  const frame = nodes.get(profile.samples[i]).callFrame;
  const d = span(i);
  total += d;
  const p = part(frame);
  parts.set(p, (parts.get(p) ?? 0) + d);
  const name = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;
  functions.set(name, (functions.get(name) ?? 0) + d);
}
const row = ([name, us]) => `${(us / requests).toFixed(2).padStart(8)} µs  ${name}`;
console.log(`window ${((times[to - 1] - times[from]) / 1e6).toFixed(1)} s, busy ${(total / 1e6).toFixed(2)} s: ${(total / requests).toFixed(1)} µs per request`);
for (const r of [...parts].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(row(r));
console.log('functions:');
for (const r of [...functions].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg ?? 30))) console.log(row(r));
