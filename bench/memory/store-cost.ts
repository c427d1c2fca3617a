/**
 * CPU per `set` into a full 64 MiB memory store (every set evicts) and per
 * `get` of a stored record, the store as it is against the packed-Buffer LRU
 * it replaced, in one process: min over batches, ns per call.
 *
 *   node --import ./bin/loader/register.mjs bench/memory/store-cost.ts
 */
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry, CacheRecord } from '../../lib/stages/cache/entry.ts';
import { LruBytes } from './lru.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { pack, unpack } from '../../lib/stages/cache/packed.ts';

const MAX_BYTES = 64 * 1024 * 1024;
const BATCH = 20_000;
const BATCHES = 15;

interface Store {
  set(key: string, record: CacheRecord, ttl: number): void;
  get(key: string): CacheRecord | undefined;
}

/** The store before the slabs: one packed Buffer per record in an LRU. */
class PackedStore implements Store {
  private readonly lru = new LruBytes<Buffer>(MAX_BYTES);
  set(key: string, record: CacheRecord, ttl: number): void {
    const packed = pack(record);
    this.lru.set(key, packed, 240 + key.length * 2 + packed.length, Date.now() + ttl);
  }
  get(key: string): CacheRecord | undefined {
    const p = this.lru.get(key, Date.now());
    return p === undefined ? undefined : unpack(p);
  }
}

const entry: CacheEntry = {
  kind: 'entry', status: 200, statusText: undefined,
  headers: ['content-type', 'application/json', 'cache-control', 'max-age=60', 'date', new Date(1.8e12).toUTCString(), 'x-upstream', 'bench', 'etag', '"abc"'],
  body: new BufferedBody([Buffer.alloc(1068, 'x')]), vary: [],
  storedAt: 0, initialAge: 0, freshUntil: 60_000, staleWhileRevalidate: 0, staleIfError: 0,
};
const key = (i: number): string => `echo GET http://127.0.0.1:8080/bench?r=abcdef01-1-${i}`;

function measure(name: string, store: Store): void {
  let i = 0;
  for (; i < 60_000; i++) store.set(key(i), entry, 600_000);
  const keys = Array.from({ length: BATCH * BATCHES }, (_, k) => key(i + k));
  let set = Infinity;
  for (let b = 0; b < BATCHES; b++) {
    const t0 = process.hrtime.bigint();
    for (let k = b * BATCH; k < (b + 1) * BATCH; k++) store.set(keys[k]!, entry, 600_000);
    set = Math.min(set, Number(process.hrtime.bigint() - t0) / BATCH);
  }
  // hits: the last BATCH keys stored, each read BATCHES times
  const hot = keys.slice(-BATCH);
  let first = Infinity;
  let again = Infinity;
  for (let b = 0; b < BATCHES; b++) {
    const t0 = process.hrtime.bigint();
    for (const k of hot) if (store.get(k) === undefined) throw new Error(`lost ${k}`);
    const ns = Number(process.hrtime.bigint() - t0) / BATCH;
    if (b === 0) first = ns;
    else again = Math.min(again, ns);
  }
  console.log(`${name.padEnd(7)} set ${set.toFixed(0)} ns  first get ${first.toFixed(0)} ns  later gets ${again.toFixed(0)} ns`);
}

measure('packed', new PackedStore());
measure('slabs', new MemoryCacheStore({ maxBytes: MAX_BYTES }));
