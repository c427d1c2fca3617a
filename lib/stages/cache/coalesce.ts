import type { Subscriber } from 'rxjs';
import type { GatewayRequest, GatewayResponse } from '../../types.ts';
import { answerConditional, hasPreconditions } from './conditional.ts';
import type { CacheContext } from './context.ts';
import { variantKey } from './key.ts';
import { goUpstream } from './miss.ts';
import { replayRange } from './range.ts';
import { replay } from './replay.ts';

/**
 * Joins the leader fetching `key` (request coalescing): serves the entry it
 * settles on if it is this request's variant, else goes upstream itself (the
 * leader's answer was not storable, or the leader went away). Only for
 * concurrent misses, so closures are fine here.
 */
export function waitForLeader(
  ctx: CacheContext,
  downstream: Subscriber<GatewayResponse>,
  req: GatewayRequest,
  base: string,
  key: string,
): void {
  const leave = ctx.inflight.join(key, (v) => {
    if (v !== null && v.key === variantKey(base, req.headers, v.entry.vary)) {
      const now = ctx.clock.now();
      // the leader's stored 200 answers a waiter's preconditions as a fresh hit would
      if (v.status === 'HIT' && hasPreconditions(req.headers) && answerConditional(downstream, req, v.entry, now)) return;
      req.locals.cache = v.status;
      const range = req.headers.range;
      downstream.next(range === undefined ? replay(v.entry, req.method, v.status, now) : replayRange(v.entry, req, range, v.status, now));
      downstream.complete();
      return;
    }
    goUpstream(ctx, downstream, req, base, 'MISS', true);
  });
  downstream.add(leave);
}
