import { Subscription } from 'rxjs';
import { BufferedBody, collectBody } from '../../body.ts';
import type { GatewayRequest } from '../../types.ts';
import { storeEntry, type CacheContext } from './context.ts';
import { planStorage } from './policy.ts';
import { backgroundRequest, entryOf } from './replay.ts';

/**
 * `stale-while-revalidate`: one background GET to refresh `key`, not tied
 * to any client (the stale entry has already answered). At most one per key
 * at a time; a failed one leaves the entry as it was, so a later stale hit
 * tries again.
 */
export function revalidate(ctx: CacheContext, req: GatewayRequest, base: string, key: string): void {
  const revalidating = ctx.revalidating;
  if (revalidating.has(key)) return;
  revalidating.add(key);
  const finish = (): void => {
    revalidating.delete(key);
  };
  const bg = backgroundRequest(req);
  // a container, so a response arriving synchronously can still end the subscription
  const sub = new Subscription();
  let responded = false;
  sub.add(ctx.next(bg).subscribe({
    next(res) {
      responded = true;
      const plan = planStorage(res, ctx.clock.now(), ctx.policy);
      const body = res.body;
      if (plan === null || (body !== null && body.length !== null && body.length > ctx.maxEntrySize)) {
        body?.destroy();
        sub.unsubscribe();
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
