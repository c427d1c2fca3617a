import { describe, expect, it } from 'vitest';
import { BufferedBody, collectBody } from '../../lib/body.ts';
import type { CacheEntry, CacheRecord, CacheStore } from '../../lib/stages/cache/entry.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import type { StoragePlan } from '../../lib/stages/cache/policy.ts';
import { StoreTee } from '../../lib/stages/cache/tee.ts';
import { cache } from '../../lib/stages/cache/cache.ts';
import { namespaced } from '../../lib/stages/cache/index.ts';
import type { GatewayResponse } from '../../lib/types.ts';
import { Observable, firstValueFrom } from 'rxjs';
import { gatewayRequest } from '../support/request.ts';

const plan: StoragePlan = {
  freshness: { storedAt: 0, initialAge: 0, freshUntil: 60_000, staleWhileRevalidate: 0, staleIfError: 0 },
  headers: [],
  vary: [],
};
const res: GatewayResponse = { status: 200, headers: [], body: null };

/** Two chunks that are views into one larger buffer, as undici's socket reads are. */
function upstreamChunks(): { socket: Buffer; chunks: Buffer[] } {
  const socket = Buffer.alloc(20); // its own ArrayBuffer, not a slice of Node's pool
  socket.write('....hello, world....');
  return { socket, chunks: [socket.subarray(4, 10), socket.subarray(10, 16)] };
}

/** Streams `chunks` through a tee; returns what the client got and the entry stored. */
function tee(chunks: Buffer[], storeCopies: boolean): { client: Buffer; entry: CacheEntry | undefined } {
  let entry: CacheEntry | undefined;
  const t = new StoreTee(new BufferedBody(chunks), 1024, { stored: (e) => (entry = e), dropped: () => {} }, res, plan, storeCopies);
  const got: Uint8Array[] = [];
  t.pipe({ write: (c) => (got.push(c), true), end: () => {} });
  return { client: Buffer.concat(got), entry };
}

describe('StoreTee: one copy per stored miss', () => {
  it('copies the body into one buffer of exactly its size for a store that keeps chunks', () => {
    const { socket, chunks } = upstreamChunks();
    const { client, entry } = tee(chunks, false);
    expect(client.toString()).toBe('hello, world');
    const stored = entry!.body!.chunks;
    expect(stored).toHaveLength(1);
    expect(Buffer.from(stored[0]!).toString()).toBe('hello, world');
    expect(stored[0]!.byteLength).toBe(12);
    expect(stored[0]!.buffer).not.toBe(socket.buffer);
  });

  it('hands over the chunks as they came when the store copies them itself', () => {
    const { chunks } = upstreamChunks();
    const { client, entry } = tee(chunks, true);
    expect(client.toString()).toBe('hello, world');
    expect(entry!.body!.chunks).toEqual(chunks);
    expect(entry!.body!.chunks[0]).toBe(chunks[0]);
  });

  it('the memory store keeps a copy, not the views: the socket buffer can change without changing the entry', () => {
    const { socket, chunks } = upstreamChunks();
    const { entry } = tee(chunks, true);
    const store = new MemoryCacheStore({ clock: { now: () => 0 } });
    store.set('k', entry!, 60_000);
    socket.fill(0x21);
    const got = store.get('k') as CacheEntry;
    expect(Buffer.concat(got.body!.chunks as Uint8Array[]).toString()).toBe('hello, world');
  });

  it('the built-in stores say they copy; a store that does not say so gets a compact copy from the cache', async () => {
    expect(new MemoryCacheStore().copiesBodies).toBe(true);
    const kept: CacheRecord[] = [];
    const keeper: CacheStore = { get: () => undefined, set: (_k, r) => void kept.push(r) };
    const { socket, chunks } = upstreamChunks();
    const handler = cache({ store: keeper })(() => new Observable<GatewayResponse>((s) => {
      s.next({ status: 200, headers: [], body: new BufferedBody(chunks) });
      s.complete();
    }));
    const req = gatewayRequest({ id: '1', path: '/a', headers: { host: 'h' } });
    const r = await firstValueFrom(handler(req));
    expect((await collectBody(r.body!)).toString()).toBe('hello, world');
    const entry = kept.find((k): k is CacheEntry => k.kind === 'entry')!;
    expect(entry.body!.chunks).toHaveLength(1);
    expect(entry.body!.chunks[0]!.buffer).not.toBe(socket.buffer);
  });

  it('the stage\'s per-service view of a store keeps copiesBodies (it dropped it: every stored miss was copied twice)', () => {
    const store = new MemoryCacheStore({ clock: { now: () => 0 } });
    const view = namespaced(store, 'svc');
    expect(view.copiesBodies).toBe(true);
    const keeper: CacheStore = { get: () => undefined, set: () => {} };
    expect(namespaced(keeper, 'svc').copiesBodies).toBe(false);
    const { chunks } = upstreamChunks();
    const { entry } = tee(chunks, view.copiesBodies === true);
    void view.set('k', entry!, 60_000);
    expect(store.get('svc k')).toMatchObject({ kind: 'entry' });
    expect(view.get('k')).toBe(store.get('svc k'));
  });
});
