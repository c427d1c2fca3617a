import { BufferedBody } from '../../body.ts';
import type { Body, BodySink, GatewayResponse } from '../../types.ts';
import { compact } from './compact.ts';
import type { StoragePlan } from './policy.ts';
import { readAhead } from './read-ahead.ts';
import { entryOf } from './replay.ts';
import { DELIVERED, ENDED, FAILED, ORPHANED, PAUSED, WAITING, type TeeOwner } from './tee-flags.ts';

export type { TeeOwner } from './tee-flags.ts';

/**
 * A response body that streams to the client while a copy of it is kept,
 * and stored as an entry once the body ends. One object per stored miss:
 * it is both the client's Body and the sink the upstream body writes into.
 *
 * While the copy may still be stored (at most `limit` bytes), the upstream
 * is read at its own pace, not the client's: a chunk the client's sink
 * cannot take yet waits in `queue` (the copy holds it anyway), and the
 * entry is stored, and coalesced waiters answered, when the upstream ends,
 * however slowly the client reads (nginx's `proxy_buffering` with its cache
 * lock; review RD). The client is fed from the queue at its pace. Past
 * `limit` the copy is dropped and the upstream waits for the client again
 * (the backpressure of any other response), so one request holds at most
 * about `limit` bytes of unread body; and once the queues of the whole
 * process hold `readAhead.max` (read-ahead.ts), a tee whose client waits
 * stops reading ahead too. A destroyed body stores nothing.
 */
export class StoreTee implements Body, BodySink {
  readonly length: number | null;
  private sink: BodySink | null = null;
  /** The copy: the first chunk, then a list once a second comes (most bodies come in one); `copying` false once dropped. */
  private first: Uint8Array | null = null;
  private chunks: Uint8Array[] | null = null;
  private copying = true;
  private size = 0;
  /** Chunks read ahead of the client (its sink said wait): written from `queued` on, at its pace. */
  private queue: Uint8Array[] | null = null;
  private queued = 0;
  /** Bytes of `queue` not written yet, counted in `readAhead.used`. */
  private ahead = 0;
  /** WAITING, PAUSED, ENDED, DELIVERED, ORPHANED, FAILED (tee-flags.ts): one field (one object per stored miss). */
  private flags = 0;
  /** What to do once the client's sink has ended (the owner's exchange completed before). */
  private then: (() => void) | null = null;

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

  /** From the client: write what was read ahead, then let the upstream go on. */
  resume(): void {
    this.flags &= ~WAITING;
    const queue = this.queue;
    if (queue !== null) {
      while (this.queued < queue.length) {
        const chunk = queue[this.queued]!;
        queue[this.queued++] = EMPTY; // written: not held for the client any more
        this.ahead -= chunk.byteLength;
        readAhead.used -= chunk.byteLength;
        if (!this.sink!.write(chunk)) {
          this.flags |= WAITING;
          return;
        }
      }
      this.queue = null;
      this.queued = 0;
    }
    if ((this.flags & FAILED) !== 0) this.handedOver(); // the error, once what was read is written
    else if ((this.flags & ENDED) !== 0) this.finish();
    else if ((this.flags & PAUSED) !== 0) {
      this.flags &= ~PAUSED;
      this.source.resume();
    }
  }

  destroy(): void {
    this.unqueue();
    if (this.readsOn()) return;
    this.drop();
    this.owner.dropped();
    this.source.destroy();
  }

  /**
   * The client went away (its body destroyed, its exchange unsubscribed):
   * true when the upstream is read on into the copy without it, because
   * the copy may still be stored and the owner has others waiting for it,
   * as nginx reads on a response it caches after its client closed. Past
   * `limit` the copy is dropped then, and the upstream stopped.
   */
  readsOn(): boolean {
    if (!this.copying || (this.flags & ENDED) !== 0) return false;
    if ((this.flags & ORPHANED) === 0) {
      if (this.owner.readOn?.() !== true) return false;
      this.flags |= ORPHANED;
      this.detach();
    }
    return true;
  }

  /**
   * The owner's exchange completed (the upstream body ended): true when the
   * client still has chunks read ahead to get, and `downstream` is completed
   * once it has them (the edge's exchange, its access log's bytes and its
   * in-flight count, lasts until the body is written).
   */
  completesLater(downstream: { complete(): void }): boolean {
    if ((this.flags & DELIVERED) !== 0) return false;
    this.then = () => downstream.complete();
    return true;
  }

  /**
   * The upstream body broke off: true when the client still has chunks read
   * ahead for it, and `fail` runs once they are written (it gets every byte
   * the upstream sent, as when it read at its own pace; review RG, M1); false:
   * fail now. Its sink is not ended: that would pass a chunked body off as whole.
   */
  failsLater(fail: () => void): boolean {
    if (this.queue === null || this.queued >= this.queue.length) return false;
    this.drop();
    this.flags |= FAILED;
    this.then = fail;
    return true;
  }

  /** The upstream is read on without the client, for the owner's waiters. */
  get orphaned(): boolean {
    return (this.flags & ORPHANED) !== 0;
  }

  private detach(): void {
    this.sink = null;
    this.unqueue();
    const paused = (this.flags & PAUSED) !== 0;
    this.flags &= ~(WAITING | PAUSED);
    if (paused) this.source.resume();
  }

  /** From the upstream body: copy, then pass on or keep for the client. */
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
    const sink = this.sink;
    if (sink === null) {
      // No client (detached): read on while the copy may be stored and someone still waits for it (review RG, L2).
      if (this.copying) {
        if (this.owner.readOn?.() === true) return true;
        this.drop();
        this.owner.dropped(); // orphaned: unsubscribes, which aborts the upstream request
      }
      this.source.destroy();
      return false;
    }
    if ((this.flags & WAITING) === 0) {
      if (sink.write(chunk)) return true;
      this.flags |= WAITING;
    } else {
      (this.queue ??= []).push(chunk);
      this.ahead += chunk.byteLength;
      readAhead.used += chunk.byteLength;
    }
    // The client waits: read on while the copy may be stored and the process's read-ahead lasts, else wait with it.
    // `<`: with `maxReadAhead: 0` nothing is read ahead, not one chunk (review RL, L3); that is no refusal to count.
    if (this.copying) {
      if (readAhead.used < readAhead.max) return true;
      if (readAhead.max > 0) readAhead.refused++;
    }
    this.flags |= PAUSED;
    return false;
  }

  /** The queue is given up (the client went away): its bytes leave the process's read-ahead. */
  private unqueue(): void {
    readAhead.used -= this.ahead;
    this.ahead = 0;
    this.queue = null;
  }

  private drop(): void {
    this.copying = false;
    this.first = this.chunks = null;
  }

  /** From the upstream body: store the copy, then end the client's body once it has the rest. */
  end(): void {
    this.flags |= ENDED;
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
    if ((this.flags & WAITING) === 0) this.finish();
  }

  /** The upstream's error (`failsLater`), once what was read ahead is written. */
  private handedOver(): void {
    const then = this.then;
    this.then = null;
    then?.();
  }

  private finish(): void {
    if ((this.flags & DELIVERED) !== 0) return; // a resume after the end: once is enough
    this.flags |= DELIVERED;
    this.sink?.end();
    const then = this.then;
    if (then !== null) {
      this.then = null;
      then();
    }
  }
}

const EMPTY = new Uint8Array(0);
