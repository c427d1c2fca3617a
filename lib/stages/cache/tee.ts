import { BufferedBody } from '../../body.ts';
import type { Body, BodySink, GatewayResponse } from '../../types.ts';
import type { CacheEntry } from './entry.ts';
import type { StoragePlan } from './policy.ts';
import { entryOf } from './replay.ts';

/** Who hears how a tee's copy ended: whole (an entry to store) or given up. */
export interface TeeOwner {
  stored(entry: CacheEntry): void;
  dropped(): void;
}

/**
 * A response body that streams to the client while a copy of it is kept,
 * and stored as an entry once the body ends. A copy growing past `limit`
 * is dropped and the body keeps streaming; a destroyed body stores nothing.
 * One object per stored miss: it is both the client's Body and the sink the
 * upstream body writes into.
 */
export class StoreTee implements Body, BodySink {
  readonly length: number | null;
  private sink: BodySink | null = null;
  /** The copy: the first chunk, then a list once a second comes (most bodies come in one); `copying` false once dropped. */
  private first: Uint8Array | null = null;
  private chunks: Uint8Array[] | null = null;
  private copying = true;
  private size = 0;

  constructor(
    private readonly source: Body,
    private readonly limit: number,
    private readonly owner: TeeOwner,
    private readonly res: GatewayResponse,
    private readonly plan: StoragePlan,
    /** The store copies the bytes itself (`CacheStore.copiesBodies`): keep the chunks as they came. */
    private readonly storeCopies: boolean,
  ) {
    this.length = source.length;
  }

  pipe(sink: BodySink): void {
    this.sink = sink;
    this.source.pipe(this);
  }

  resume(): void {
    this.source.resume();
  }

  destroy(): void {
    this.drop();
    this.owner.dropped();
    this.source.destroy();
  }

  /** From the upstream body: copy, then pass on. */
  write(chunk: Uint8Array): boolean {
    if (this.copying) {
      this.size += chunk.byteLength;
      if (this.size > this.limit) {
        this.drop(); // too large: drop the copy, keep streaming
        this.owner.dropped();
      } else if (this.first === null) {
        this.first = chunk;
      } else {
        (this.chunks ??= [this.first]).push(chunk);
      }
    }
    return this.sink!.write(chunk);
  }

  private drop(): void {
    this.copying = false;
    this.first = this.chunks = null;
  }

  /** From the upstream body: store the copy, then end the client's body. */
  end(): void {
    if (this.copying) {
      const chunks = this.chunks ?? (this.first === null ? [] : [this.first]);
      // A chunk from undici is a view into its socket read buffer: a store
      // that keeps it would keep the whole buffer alive (the LRU counts only
      // the view's bytes), so it gets a copy of exactly `size` bytes, unless
      // it copies them itself (the memory store's pack, Redis's encode):
      // one copy per stored miss instead of two. Coalesced waiters replay
      // the chunks at once and drop them.
      const data = new BufferedBody(this.storeCopies ? chunks : [compact(chunks, this.size)]);
      this.drop();
      this.owner.stored(entryOf(this.res, this.plan, data));
    }
    this.sink!.end();
  }
}

/** The chunks copied into one buffer of exactly `size` bytes (small ones share Node's 8 KiB pool slabs, which LRU order frees roughly in turn). */
function compact(chunks: readonly Uint8Array[], size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
