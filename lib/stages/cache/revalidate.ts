import { Subscription } from 'rxjs';
import { BufferedBody, collectBody } from '../../body.ts';
import type { GatewayRequest } from '../../types.ts';
import { storeEntry, type CacheContext } from './context.ts';
import type { CacheEntry } from './entry.ts';
import { planStorage, supersedes } from './policy.ts';
import { backgroundRequest, entryOf } from './replay.ts';
import { applyNotModified, revalidationHeaders, selects } from './revalidation.ts';

/**
 * `stale-while-revalidate`: one background GET to refresh `key`, not tied
 * to any client (the stale entry has already answered). At most one per key
 * at a time; a failed one leaves the entry as it was, so a later stale hit
 * tries again. It carries `entry`'s validators: a 304 freshens the entry
 * without a body (one that is about another response is followed by a GET
 * without them), a 200 replaces it. An answer that may not be stored but
 * says the resource changed or is gone (`supersedes`) deletes it: kept, it
 * was served `STALE` for the whole window, and refreshed on every hit.
 */
export function revalidate(ctx: CacheContext, req: GatewayRequest, base: string, key: string, entry: CacheEntry | null): void {
  const revalidating = ctx.revalidating;
  if (revalidating.has(key)) return;
  revalidating.add(key);
  refresh(ctx, req, base, entry, entry, () => {
    revalidating.delete(key);
  });
}

function refresh(ctx: CacheContext, req: GatewayRequest, base: string, stale: CacheEntry | null, entry: CacheEntry | null, done: () => void): void {
  // One-shot: an exchange can end twice (its 304 handled, then undici's length check fails it),
  // and once a GET without validators follows a 304, that GET finishes the refresh.
  let over = false;
  const finish = (): void => {
    if (over) return;
    over = true;
    done();
  };
  const bg = backgroundRequest(req);
  const headers = entry === null ? null : revalidationHeaders(bg.headers, entry);
  const old = headers === null ? null : entry;
  if (headers !== null) bg.headers = headers;
  // a container, so a response arriving synchronously can still end the subscription
  const sub = new Subscription();
  let responded = false;
  sub.add(ctx.next(bg).subscribe({
    next(res) {
      responded = true;
      // Not unsubscribed: its exchange ends by itself (cancelled, undici would close the connection).
      if (res.status === 304 && old !== null) {
        res.body?.destroy();
        if (!selects(old, res)) {
          over = true;
          refresh(ctx, req, base, stale, null, done);
          return;
        }
        applyNotModified(ctx, base, bg, old, res, ctx.clock.now());
        finish();
        return;
      }
      const plan = planStorage(res, ctx.clock.now(), ctx.policy);
      const body = res.body;
      if (plan === null || (body !== null && body.length !== null && body.length > ctx.maxEntrySize)) {
        body?.destroy();
        sub.unsubscribe();
        if (stale !== null && supersedes(res.status)) ctx.table.remove(base, req, stale);
        finish();
        return;
      }
      if (body === null) {
        storeEntry(ctx, base, bg, entryOf(res, plan, null));
        finish();
        return;
      }
      collectBody(body, ctx.maxEntrySize).then(
        (buf) => {
          storeEntry(ctx, base, bg, entryOf(res, plan, new BufferedBody([buf])));
          finish();
        },
        () => {
          sub.unsubscribe(); // too large: collectBody destroyed the body; abort the exchange
          finish();
        },
      );
    },
    error: finish,
    complete: () => {
      if (!responded) finish();
    },
  }));
}
