import type { Subscriber } from 'rxjs';
import { tapBody } from '../../body.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { GatewayTimeoutError } from '../../errors.ts';
import type { Runtime } from '../../runtime.ts';
import { InnerSubscriber } from '../../subscriber.ts';
import type { GatewayRequest, GatewayResponse } from '../../types.ts';
import type { StageContext } from '../define.ts';
import { Deadlines, type Deadline } from '../timeout/deadlines.ts';
import type { TimeoutsConfig } from '../timeout/schema.ts';
import { answerConditional, hasPreconditions } from './conditional.ts';
import { HEADED, type CacheContext, type Headed } from './context.ts';
import { variantKey } from './key.ts';
import { goUpstream } from './miss.ts';
import { replayRange } from './range.ts';
import { replay } from './replay.ts';

/**
 * Answers with `res` and completes `out` once its body has ended at the
 * client's writer, not at once as a hit does: the entry a leader just stored
 * holds the copy's chunks, many, and a replay stops at the first the writer
 * refuses, so completing at once wrote the waiter's access line (its
 * `bytesOut`) and left the edge's in-flight count before most of the body
 * was handed over (3,975,013 of 8 MiB in cache-slow-leader-waiters under
 * load). Not at the last chunk handed over either (404ba53): a refused one
 * is still partly in the writer, and a drain would close the connection on
 * it (review RL, I1; the tee's M1). The replay ends once the writer, having
 * sent its last byte, resumes it (afb844c). A stored entry is one chunk: a
 * hit hands it over whole. Exported for its test.
 */
/** answerWhole's tap: nothing to do per chunk. */
const noTap = (): void => {};

export function answerWhole(out: Subscriber<GatewayResponse>, res: GatewayResponse): void {
  const body = res.body;
  if (body === null || body.length === null || body.length === 0) {
    out.next(res);
    out.complete();
    return;
  }
  // Ended within `next` (the client's writer took it all): completed after it, never inside it.
  let answering = true;
  let over = false;
  out.next({ ...res, body: tapBody(body, noTap, () => {
    if (answering) over = true;
    else out.complete();
  }) });
  answering = false;
  if (over) out.complete();
}

/**
 * Joins the leader fetching `key` (request coalescing): serves the entry it
 * settles on if it is this request's variant, else goes upstream itself (the
 * leader's answer was not storable, or the leader went away). Only for
 * concurrent misses, so closures are fine here.
 *
 * With `limit` (the route's `timeouts.total`, which the timeout stage, run
 * after the cache, never sees of this wait) the waiter has a deadline of its
 * own from when it joins. Past it: with no upstream head yet, it stops
 * waiting (or stops the request it sent itself) and fails with the 504 the
 * timeout stage gives (`waitLimit`); when the leader has its head, it leaves
 * the leader and goes upstream itself (its answer stored, so later requests
 * hit: review RE), as nginx does at `proxy_cache_lock_timeout`: a slow
 * upstream body must not hold it (a slow leading client no longer does:
 * tee.ts reads at the upstream's pace). A held 304 of its own request ends
 * the bound.
 */
export function waitForLeader(
  ctx: CacheContext,
  downstream: Subscriber<GatewayResponse>,
  req: GatewayRequest,
  base: string,
  key: string,
  limit: WaitLimit | null = null,
): void {
  const waiter = limit === null ? null : new Waiter(downstream, limit);
  const out = waiter === null ? downstream : waiter as unknown as Subscriber<GatewayResponse>;
  // What the access log and traces say of a waiter that never gets further (its deadline passed); an answer overwrites it.
  req.locals.cache = 'MISS';
  const leave = ctx.inflight.join(key, (v) => {
    if (v === undefined) {
      // The leader's upstream answered: its body, however slowly the upstream sends it, must not hold this request
      // past its bound (review RD): at the deadline it leaves and goes upstream itself, as nginx's proxy_cache_lock_timeout.
      if (waiter !== null) waiter.lapse = () => {
        leave();
        goUpstream(ctx, downstream, req, base, 'MISS', true);
      };
      return;
    }
    // Settled: no lapse any more. After the leader's head, its own request is bounded by the timeout stage alone (as before 16e3450).
    if (waiter !== null && waiter.lapse !== null) { waiter.lapse = null; waiter[HEADED](); }
    if (v !== null && v.key === variantKey(base, req.headers, v.entry.vary)) {
      const now = ctx.clock.now();
      // the leader's stored 200 answers a waiter's preconditions as a fresh hit would
      req.locals.cache = v.status;
      if (v.status === 'HIT' && hasPreconditions(req.headers) && answerConditional(out, req, v.entry, now)) return;
      const range = req.headers.range;
      answerWhole(out, range === undefined ? replay(v.entry, req.method, v.status, now) : replayRange(v.entry, req, range, v.status, now));
      return;
    }
    goUpstream(ctx, out, req, base, 'MISS', true);
  });
  out.add(leave);
}

/**
 * The bound on a coalesced waiter: the route's `timeouts.total`, one
 * deadline list (and one timer) per cache stage, as the timeout stage keeps
 * its own. A waiter whose bound passes before any upstream head answers 504,
 * as the timeout stage would have, and does not go upstream (Envoy's route
 * timeout bounds the whole request the same way); after the leader's head
 * it goes upstream itself (`Waiter.lapse`).
 */
export interface WaitLimit {
  readonly deadlines: Deadlines;
  readonly error: () => GatewayTimeoutError;
}

/**
 * A route's `timeouts.total` as the timeout stage gets it (the route's
 * `timeouts` merged over its service's; `false` on either: none): what
 * bounds its coalesced waiters (`CacheOptions.waitTimeout`).
 */
export function routeTotal(ctx: Pick<StageContext, 'route' | 'serviceConfig'>): Duration | null {
  const r = ctx.route['timeouts'] as TimeoutsConfig | false | undefined;
  const s = ctx.serviceConfig['timeouts'] as TimeoutsConfig | false | undefined;
  if (r === false || (r === undefined && s === false)) return null;
  return r?.total ?? (s === false ? undefined : s?.total) ?? null;
}

/** The `WaitLimit` of a route whose `timeouts.total` is `total`; null for none. */
export function waitLimit(total: Duration | null, runtime: Runtime): WaitLimit | null {
  if (total === null) return null;
  const ms = parseDuration(total, 'waitTimeout');
  // YAML refuses `total: 0` too ("leave the key out"): 0 would answer every waiter 504 at once.
  if (ms === 0) throw new TypeError('waitTimeout: expected more than 0 ms (null for no bound)');
  return {
    deadlines: new Deadlines(runtime.scheduler, () => runtime.now(), ms),
    // The timeout stage's message for `total`, so a waiter's 504 reads as any other request's.
    error: () => new GatewayTimeoutError(`no response from upstream within ${ms}ms`),
  };
}

/**
 * A waiter under its bound: passes everything on to the client's subscriber
 * and leaves the deadline list at its response head, or its own request's. Unsubscribing it (the
 * client went away, or the bound passed) leaves the leader's list of
 * waiters and stops the request it sent itself, never the leader's.
 * `Deadlines.remove` does nothing for an entry off the list, so no flag.
 */
class Waiter extends InnerSubscriber<GatewayResponse> implements Deadline, Headed {
  deadline = 0;
  prevDeadline: Deadline | null = null;
  nextDeadline: Deadline | null = null;

  constructor(downstream: Subscriber<GatewayResponse>, private readonly limit: WaitLimit) {
    super(downstream);
    limit.deadlines.add(this);
  }

  protected onNext(res: GatewayResponse): void {
    this.limit.deadlines.remove(this);
    this.downstream.next(res);
  }

  override unsubscribe(): void {
    super.unsubscribe();
    this.limit.deadlines.remove(this);
  }

  /** Its own request's head came (a 304 held until the body is stored, miss.ts's `hold`): it waits on without a bound. */
  [HEADED](): void {
    this.limit.deadlines.remove(this);
  }

  /** Set once the leader has its head: what the bound does then instead of a 504. */
  lapse: (() => void) | null = null;

  /** The bound passed (the list let go of it): leave the leader that has its head for a request of its own, else stop and 504. */
  expire(): void {
    const lapse = this.lapse;
    if (lapse !== null) {
      this.lapse = null;
      lapse();
      return;
    }
    const downstream = this.downstream;
    this.unsubscribe();
    downstream.error(this.limit.error());
  }
}
