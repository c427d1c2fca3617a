// Preloaded into the gateway (`node --import bench/memory/promoted-probe.mjs …`):
// V8's sampling heap profiler, told to forget the samples whose objects a
// scavenge collects (includeObjectsCollectedByMinorGC: false) and to keep
// those a mark-compact collects (includeObjectsCollectedByMajorGC: true).
// What is left is what survived the young generation: promoted to old space
// (or still alive), each sample with the JavaScript stack that allocated it.
// The first SIGUSR2 starts sampling, the second writes the profile to
// $PROMOTED_OUT (a .heapprofile Chrome DevTools opens; promoted-report.mjs
// sums it by allocation site) and stops. Plain JS: runs before any loader.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

if (isMainThread) (() => {
  const session = new Session();
  session.connect();
  const post = (method, params) => new Promise((resolve, reject) =>
    session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  const interval = Number(process.env.PROMOTED_INTERVAL ?? 1024);
  // PROMOTED_GC=1: no profiler; a mark-compact at the first SIGUSR2 (the old
  // space starts clean) and two scavenges then a mark-compact at the second
  // (the young generation empties into old space first), so that with
  // --track-gc-object-stats --trace-gc-object-stats the second mark-compact's
  // "dead" objects are what died in old space in between, by instance type.
  // PROMOTED_SNAPSHOT=path: no profiler; each SIGUSR2 writes a heap snapshot
  // (what is alive under load, held by what: see snapshot-report.mjs).
  if (process.env.PROMOTED_SNAPSHOT) {
    let n = 0;
    process.on('SIGUSR2', () => {
      n++;
      import('node:v8').then(({ writeHeapSnapshot }) => {
        writeHeapSnapshot(`${process.env.PROMOTED_SNAPSHOT}.${n}.heapsnapshot`);
        process.stderr.write(n === 1 ? 'PROMOTED sampling\n' : 'PROMOTED written\n');
      });
    });
    return;
  }
  if (process.env.PROMOTED_GC === '1') {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc');
    let first = true;
    process.on('SIGUSR2', () => {
      if (!first) {
        gc({ type: 'minor' });
        gc({ type: 'minor' });
      }
      process.stderr.write(`PROMOTED ${first ? 'sampling' : 'written'}\n`);
      gc(); // no options: a full mark-compact (gc({ type: 'major' }) ran a scavenge here on Node 20)
      first = false;
    });
    return;
  }
  let sampling = false;
  process.on('SIGUSR2', async () => {
    try {
      if (!sampling) {
        sampling = true;
        await post('HeapProfiler.startSampling', {
          samplingInterval: interval,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: false,
        });
        process.stderr.write('PROMOTED sampling\n');
      } else {
        sampling = false;
        const { profile } = await post('HeapProfiler.stopSampling');
        writeFileSync(process.env.PROMOTED_OUT ?? 'promoted.heapprofile', JSON.stringify(profile));
        process.stderr.write('PROMOTED written\n');
      }
    } catch (err) {
      process.stderr.write(`PROMOTED error ${err?.message ?? err}\n`);
    }
  });
})();
