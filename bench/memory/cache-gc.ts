/**
 * What a full memory cache costs the garbage collector, in one process, one
 * store after the other: entries kept as objects (the first memory store: an
 * entry object, its header strings, a body wrapper, an LRU node), packed
 * entries (the second: one Buffer per record in an LRU), and the memory
 * store as it is (records in a log of preallocated slabs, an index on typed
 * arrays: no object per entry). Each fills a 64 MiB
 * store with bench-like entries (1,068-byte body, six headers, a 60-character
 * key), then keeps storing new ones (every store evicts the oldest): the
 * full-miss load without the network. Reported per store: V8 heap per entry,
 * scavenges and mark-compacts per 10,000 stores, the time they took (wall
 * time of the main thread, from perf_hooks) and the longest.
 *
 *   node --expose-gc --import ./bin/loader/register.mjs bench/memory/cache-gc.ts [--stores 200000]
 */
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry, CacheRecord } from '../../lib/stages/cache/entry.ts';
import { LruBytes } from './lru.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { pack } from '../../lib/stages/cache/packed.ts';

const { values } = parseArgs({ options: { stores: { type: 'string' } } });
const STORES = Number(values.stores ?? 200_000);
const MAX_BYTES = 64 * 1024 * 1024;
const BODY = Buffer.alloc(1068, 'x');

interface Store {
  set(key: string, record: CacheRecord, ttl: number): void;
}

/** The store as it was before packing: records kept as objects, ~640 bytes of bookkeeping counted each. */
class ObjectStore implements Store {
  private readonly lru = new LruBytes<CacheRecord>(MAX_BYTES);
  set(key: string, record: CacheRecord, ttl: number): void {
    let n = 640 + key.length * 2;
    if (record.kind === 'entry') {
      for (const h of record.headers) n += h.length * 2;
      n += record.body?.length ?? 0;
    }
    this.lru.set(key, record, n, Date.now() + ttl);
  }
}

/** The second store: one packed Buffer per record in an LRU, ~240 bytes of bookkeeping counted each. */
class PackedStore implements Store {
  private readonly lru = new LruBytes<Buffer>(MAX_BYTES);
  set(key: string, record: CacheRecord, ttl: number): void {
    const packed = pack(record);
    this.lru.set(key, packed, 240 + key.length * 2 + packed.length, Date.now() + ttl);
  }
}

/** A response as the miss path stores it: fresh strings and a fresh body copy each time. */
function entry(i: number): CacheEntry {
  const body = Buffer.allocUnsafe(BODY.length);
  body.set(BODY);
  return {
    kind: 'entry', status: 200, statusText: undefined,
    headers: ['content-type', 'application/json', 'cache-control', 'max-age=60', 'date', new Date(1.8e12 + i * 1000).toUTCString(),
      'x-request-id', `req-${i}`, 'x-upstream', 'bench', 'etag', `"${i.toString(36)}"`],
    body: new BufferedBody([body]), vary: [],
    storedAt: i, initialAge: 0, freshUntil: i + 60_000, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

interface Gc { scavenges: number; markCompacts: number; ms: number; maxMs: number }

function run(name: string, store: Store): void {
  const gc: Gc = { scavenges: 0, markCompacts: 0, ms: 0, maxMs: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.scavenges++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.markCompacts++;
      gc.ms += e.duration;
      gc.maxMs = Math.max(gc.maxMs, e.duration);
    }
  });
  const collect = (globalThis as { gc?: () => void }).gc;
  collect?.();
  const heap0 = process.memoryUsage().heapUsed;
  // Fill: ~42,000 entries fit.
  let i = 0;
  for (; i < 45_000; i++) store.set(`echo GET http://127.0.0.1:8080/bench?r=abcdef01-1-${i}`, entry(i), 60_000);
  collect?.();
  const perEntry = (process.memoryUsage().heapUsed - heap0) / 42_000;
  observer.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  for (let n = 0; n < STORES; n++, i++) store.set(`echo GET http://127.0.0.1:8080/bench?r=abcdef01-1-${i}`, entry(i), 60_000);
  const wall = performance.now() - t0;
  // Node records gc entries in tasks of its own after the loop above: give them time to land.
  setTimeout(() => {
    observer.disconnect();
    const per10k = (n: number): string => ((n * 10_000) / STORES).toFixed(1);
    console.log(
      `${name.padEnd(8)} heap/entry ${perEntry.toFixed(0).padStart(4)} B  ` +
        `${((wall * 1000) / STORES).toFixed(2)} µs/store  per 10k stores: ${per10k(gc.scavenges)} scavenges, ` +
        `${per10k(gc.markCompacts)} mark-compacts, ${((gc.ms * 10_000) / STORES).toFixed(1)} ms in GC; longest ${gc.maxMs.toFixed(1)} ms`,
    );
    next();
  }, 200);
}

const queue: Array<() => void> = [
  () => run('objects', new ObjectStore()),
  () => run('packed', new PackedStore()),
  () => run('slabs', new MemoryCacheStore({ maxBytes: MAX_BYTES })),
];
function next(): void {
  const step = queue.shift();
  if (step) {
    (globalThis as { gc?: () => void }).gc?.();
    setImmediate(step);
  }
}
next();
