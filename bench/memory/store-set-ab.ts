/**
 * ns per `set` into a full 64 MiB memory store (every set evicts), this
 * tree's store against another checkout's (`--other <worktree>`), batches
 * interleaved, each side's minimum and median over batches. The entry is the
 * bench's (a ~1 KiB body, the same header strings each time, as the forward
 * path hands them over), a new key per set.
 *
 *   node --import ./bin/loader/register.mjs bench/memory/store-set-ab.ts --other /tmp/wt [--batches 60]
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { BufferedBody } from '../../lib/body.ts';
import type { CacheEntry, CacheRecord } from '../../lib/stages/cache/entry.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';

const { values } = parseArgs({ options: { other: { type: 'string' }, batches: { type: 'string' } } });
const BATCH = 10_000;
const BATCHES = Number(values.batches ?? 60);
interface Store { set(key: string, record: CacheRecord, ttl: number): void }
type StoreClass = new (o: { maxBytes: number }) => Store;

const headers = ['content-type', 'application/json', 'cache-control', 'max-age=60', 'date', new Date(1.8e12).toUTCString(), 'uwebsockets', '20', 'content-length', '1068'];
const entry = (): CacheEntry => ({
  kind: 'entry', status: 200, statusText: undefined, headers: headers.slice(),
  body: new BufferedBody([Buffer.alloc(1068, 'x')]), vary: [],
  storedAt: 0, initialAge: 0, freshUntil: 60_000, staleWhileRevalidate: 0, staleIfError: 0,
});
const stores: Array<[string, Store]> = [['this tree', new MemoryCacheStore({ maxBytes: 64 * 1024 * 1024 })]];
if (values.other !== undefined) {
  const mod = (await import(pathToFileURL(resolve(values.other, 'lib/stages/cache/memory-store.ts')).href)) as { MemoryCacheStore: StoreClass };
  stores.unshift([values.other, new mod.MemoryCacheStore({ maxBytes: 64 * 1024 * 1024 })]);
}
let serial = 0;
const key = (): string => `echo GET 127.0.0.1:8080/bench?r=main-${serial++}`;
const records = Array.from({ length: BATCH }, entry);
for (const [, s] of stores) for (let i = 0; i < 70_000; i++) s.set(key(), records[i % BATCH]!, 600_000);
const ns = new Map(stores.map(([n]) => [n, [] as number[]]));
for (let b = 0; b < BATCHES; b++) {
  for (const [name, s] of stores) {
    const keys = Array.from({ length: BATCH }, key);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) s.set(keys[i]!, records[i]!, 600_000);
    ns.get(name)!.push(Number(process.hrtime.bigint() - t0) / BATCH);
  }
}
for (const [name, xs] of ns) {
  xs.sort((a, b) => a - b);
  console.log(`${name.padEnd(20)} set: min ${xs[0]!.toFixed(0)} ns, median ${xs[xs.length >> 1]!.toFixed(0)} ns`);
}
