import type { Subscriber } from 'rxjs';
import { toGatewayError } from '../../errors.ts';
import { InnerSubscriber } from '../../subscriber.ts';
import type { BodySink, GatewayRequest, GatewayResponse } from '../../types.ts';
import { answerPrecondition, answerUnstored, evaluate, hasPreconditions, withoutValidators, type Held } from './conditional.ts';
import { HEADED, storeEntry, type CacheContext, type Headed, type Settled } from './context.ts';
import { withCacheStatus, type CacheEntry } from './entry.ts';
import { planStorage, supersedes, type StoragePlan } from './policy.ts';
import { entryOf, replay, tagged, type CacheStatus } from './replay.ts';
import { answerFreshened, applyNotModified, revalidationHeaders, selects } from './revalidation.ts';
import { StoreTee, type TeeOwner } from './tee.ts';

/**
 * Sends `req` upstream for `downstream`; see `MissSubscriber`. With
 * `stored` (an expired entry the lookup found) a GET the cache may store
 * revalidates it: the upstream gets its validators (revalidation.ts).
 */
export function goUpstream(
  ctx: CacheContext, downstream: Subscriber<GatewayResponse>, req: GatewayRequest, base: string, status: CacheStatus, storeIt: boolean,
  stale?: CacheEntry, settle?: (v: Settled | null | undefined) => void, lookupKey: string = base, stored?: CacheEntry, found?: CacheEntry,
): void {
  req.locals.cache = status;
  // A storable miss asks for the whole response, as nginx's proxy_cache does: the client's validators
  // are answered from what is stored (`hold`). On a copy: the client's request is what the cache keys
  // by. A Range request keeps them: its 206 is never stored anyway.
  const storable = storeIt && req.headers.range === undefined;
  const conditional = storable && hasPreconditions(req.headers);
  // Revalidating, the validators sent are the stored entry's, never the client's.
  const headers = storable && stored !== undefined ? revalidationHeaders(req.headers, stored) : null;
  const sent = headers !== null ? { ...req, headers } : conditional ? { ...req, headers: withoutValidators(req.headers) } : req;
  ctx.next(sent).subscribe(new MissSubscriber(downstream, ctx, req, base, status, storeIt, stale, settle, lookupKey, conditional, headers === null ? null : stored!, found));
}

/**
 * Subscribes the upstream exchange of a miss (or a refresh or bypass, which
 * store nothing or just tag). With `storeIt`, a storable response is copied
 * into the entry at the upstream's pace while the client reads it at its own
 * (tee.ts), and stored when it ends. With `stale`, an upstream failure
 * answers with that entry. `settle` tells coalesced waiters what came of it,
 * once. With `conditional` (the client's validators were not sent upstream),
 * a stored 200 they match answers 304 or 412 once stored; else at once.
 */
export class MissSubscriber extends InnerSubscriber<GatewayResponse> implements TeeOwner {
  /** The exchange ended: its body is through, or a stale entry answered. */
  private completed = false;
  /** Waiters were told (or there are none). */
  private settled: boolean;
  /** The client's preconditions decided its answer: sent once the body is stored. */
  private held: Held | null = null;
  /** The body the client gets, copied into the entry (null until then, or when not stored). */
  private tee: StoreTee | null = null;
  /** What a 304 to the stored validators leaves to do once the exchange is over. */
  private then: (() => void) | null = null;

  constructor(
    downstream: Subscriber<GatewayResponse>,
    private readonly ctx: CacheContext,
    private readonly req: GatewayRequest,
    private readonly base: string,
    private readonly status: CacheStatus,
    private readonly storeIt: boolean,
    private readonly stale: CacheEntry | undefined,
    private readonly settle: ((v: Settled | null | undefined) => void) | undefined,
    private readonly lookupKey: string,
    private readonly conditional = false,
    /** The entry whose validators went upstream: a 304 freshens it. */
    private readonly revalidating: CacheEntry | null = null,
    /** The entry the lookup found, when its revalidation's 304 was about another response: only to be superseded. */
    private readonly found?: CacheEntry,
  ) {
    super(downstream);
    this.settled = settle === undefined;
  }

  protected onNext(res: GatewayResponse): void {
    // As an rxjs operator would: a throw (here or downstream) becomes the error.
    try {
      this.answer(res);
    } catch (err) {
      this.error(err);
    }
  }

  private answer(res: GatewayResponse): void {
    if (res.status === 304 && this.revalidating !== null) {
      const old = this.revalidating;
      res.body?.destroy();
      this.then = () => this.revalidated(res, old);
      return;
    }
    if (this.stale !== undefined && res.status >= 500) {
      res.body?.destroy();
      this.serveStale(this.stale);
      return;
    }
    const ctx = this.ctx;
    const plan = this.storeIt ? planStorage(res, ctx.clock.now(), ctx.policy) : null;
    const body = res.body;
    if (plan === null || (body !== null && body.length !== null && body.length > ctx.maxEntrySize)) {
      this.giveUp();
      // What the lookup found expired is superseded by an answer that may not be stored (revalidate.ts).
      const old = this.revalidating ?? this.stale ?? this.found;
      if (this.storeIt && old !== undefined && supersedes(res.status)) ctx.table.remove(this.base, this.req, old);
      // Not stored: the client's preconditions, kept from the upstream, are answered here.
      if (this.conditional && answerUnstored(this.downstream, this.req.headers, res, ctx.clock.now(), this.status)) return;
      this.downstream.next(tagged(res, this.status));
      return;
    }
    // The upstream answered: a coalesced waiter's bound ends here, not once the entry is stored (coalesce.ts).
    if (!this.settled) this.settle!(undefined);
    if (this.conditional) {
      const head = entryOf(res, plan, null);
      const outcome = evaluate(this.req.headers, head);
      if (outcome !== 'serve') {
        this.hold(res, plan, head, outcome);
        return;
      }
    }
    if (body === null) {
      this.stored(entryOf(res, plan, null));
      this.downstream.next(tagged(res, this.status));
      return;
    }
    const tee = this.tee = new StoreTee(body, ctx.maxEntrySize, this, res, plan, ctx.storeCopies);
    this.downstream.next({ ...res, headers: withCacheStatus(res.headers, this.status), body: tee });
  }

  protected override onError(err: unknown): void {
    // A revalidation needs only the 304's head: an error after it is not the answer (undici's length
    // check of a 304 with the 200's Content-Length, RFC 9110 §8.6; undici closes that connection).
    const then = this.then;
    if (then !== null) {
      this.completed = true;
      then();
      return;
    }
    if (this.stale !== undefined && toGatewayError(err).status >= 500) {
      this.serveStale(this.stale);
      return;
    }
    this.giveUp();
    // A slow client gets the chunks read ahead for it first (tee.ts `failsLater`).
    if (this.tee?.failsLater(() => this.downstream.error(err)) !== true) this.downstream.error(err);
  }

  protected override onComplete(): void {
    this.completed = true;
    const then = this.then;
    if (then !== null) then();
    // A held answer completes the client's exchange itself, once sent; a body read ahead of a slow client, once it has the rest.
    else if (this.held === null && this.tee?.completesLater(this.downstream) !== true) this.downstream.complete();
  }

  /** Its client went away while the entry may be stored: requests wait for it, so read on (tee.ts `readsOn`). */
  readOn(): boolean {
    return !this.isStopped && !this.settled && this.ctx.inflight.waited(this.lookupKey);
  }

  /**
   * Stores the response, then answers the client's preconditions from it (as
   * nginx reads on into its cache after a 304). A body past `maxEntrySize` is
   * not stored: the answer is sent at once, the rest not read (`dropped`).
   */
  private hold(res: GatewayResponse, plan: StoragePlan, head: CacheEntry, outcome: Held['outcome']): void {
    // This request's own upstream answered: its bound as a coalesced waiter ends here too (`Waiter[HEADED]`).
    (this.downstream as Partial<Headed>)[HEADED]?.();
    if (res.body === null) {
      this.stored(head);
      answerPrecondition(this.downstream, outcome, head, this.ctx.clock.now(), this.status);
      return;
    }
    this.held = { outcome, head, body: res.body };
    const sink: BodySink = { write: () => true, end: () => this.release() };
    new StoreTee(res.body, this.ctx.maxEntrySize, this, res, plan, this.ctx.storeCopies).pipe(sink);
  }

  /** Sends the held answer, once. */
  private release(): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    answerPrecondition(this.downstream, held.outcome, held.head, this.ctx.clock.now(), this.status);
  }

  override unsubscribe(): void {
    if (this.closed) return;
    // The client left while others wait for the entry: the exchange goes on for them.
    if (!this.isStopped && this.tee?.readsOn() === true) return;
    super.unsubscribe();
    // A handler completes once its body has ended; unsubscribed earlier,
    // the body never will, so waiters must not wait for it.
    if (!this.completed) this.giveUp();
  }

  /**
   * After the upstream's 304 to the stored validators, once its exchange is over (sooner would
   * cancel it): the entry, freshened, is stored and answers, its waiters get it as a HIT. A 304
   * about another response is never handed on: the request goes again, without validators.
   */
  private revalidated(res: GatewayResponse, old: CacheEntry): void {
    const { ctx, req } = this;
    if (!selects(old, res)) {
      this.settled = true; // the next exchange tells the waiters
      goUpstream(ctx, this.downstream, req, this.base, this.status, this.storeIt, this.stale, this.settle, this.lookupKey, undefined, old);
      return;
    }
    const now = ctx.clock.now();
    const { entry, key } = applyNotModified(ctx, this.base, req, old, res, now);
    if (key === null) this.giveUp();
    else if (!this.settled) this.tell({ entry, key, status: 'HIT' });
    answerFreshened(this.downstream, req, entry, now, this.conditional);
  }

  /** Stores `entry` and hands it to the waiters. */
  stored(entry: CacheEntry): void {
    const key = storeEntry(this.ctx, this.base, this.req, entry);
    if (!this.settled) this.tell({ entry, key, status: 'HIT' });
  }

  /** The copy was given up (too large, or its body destroyed). A held answer does not wait for the rest. */
  dropped(): void {
    this.giveUp();
    // Read on for waiters after the client left, now too large: nothing left to read for.
    if (this.tee?.orphaned === true) this.unsubscribe();
    const held = this.held;
    if (held === null) return;
    this.release();
    held.body.destroy();
    this.unsubscribe();
  }

  /** Nothing to share: each waiter goes upstream itself. */
  private giveUp(): void {
    if (!this.settled) this.tell(null);
  }

  private tell(v: Settled | null): void {
    this.settled = true;
    this.settle!(v);
  }

  private serveStale(entry: CacheEntry): void {
    // waiters share the fallback: during an outage they would fail the same way
    if (!this.settled) this.tell({ entry, key: this.lookupKey, status: 'STALE' });
    this.completed = true;
    this.req.locals.cache = 'STALE';
    this.downstream.next(replay(entry, this.req.method, 'STALE', this.ctx.clock.now()));
    this.downstream.complete();
  }
}
