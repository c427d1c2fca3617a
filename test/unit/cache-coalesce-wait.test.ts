import { Observable, VirtualTimeScheduler, type Subscription } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { GatewayTimeoutError } from '../../lib/errors.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { routeTotal, waitForLeader, waitLimit, type WaitLimit } from '../../lib/stages/cache/coalesce.ts';
import type { CacheContext } from '../../lib/stages/cache/context.ts';
import { Inflight } from '../../lib/stages/cache/inflight.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { CacheTable } from '../../lib/stages/cache/table.ts';
import type { CacheEntry } from '../../lib/stages/cache/entry.ts';
import type { GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/**
 * Session 11's 'found and left' (audit A11): a request that joined another's
 * miss (coalescing) waited with no deadline of its own, since the timeout
 * stage runs after the cache: up to about twice `timeouts.total`. With the
 * route's total as its `WaitLimit`, a waiter answers the timeout stage's
 * 504 at its own deadline, whether still waiting or on its own request
 * after the leader failed, and leaving never touches the leader.
 */

const TOTAL = 1000;
const KEY = 'GET api.test/items';

interface Upstream { calls: number; open: number; handler: Handler; answerAt: number | null }

/** An upstream on the virtual clock: answers `no-store` 200 after `answerAt` ms, or never; counts requests started and still open. */
function upstream(scheduler: VirtualTimeScheduler, answerAt: number | null): Upstream {
  const up: Upstream = {
    calls: 0, open: 0, answerAt,
    handler: () => new Observable<GatewayResponse>((s) => {
      up.calls++;
      up.open++;
      const timer = up.answerAt === null ? null : scheduler.schedule(() => {
        s.next({ status: 200, headers: ['cache-control', 'no-store'], body: BufferedBody.of('own') });
        s.complete();
      }, up.answerAt);
      return () => { up.open--; timer?.unsubscribe(); };
    }),
  };
  return up;
}

function setup(answerAt: number | null) {
  const scheduler = new VirtualTimeScheduler();
  const runtime = virtualRuntime(scheduler);
  const clock = { now: () => runtime.wallNow() };
  const up = upstream(scheduler, answerAt);
  const ctx: CacheContext = {
    next: up.handler,
    policy: { statuses: new Set([200]), ttl: 60_000, maxTtl: null, staleWhileRevalidate: 0, staleIfError: 0 },
    maxEntrySize: 1 << 20, clock,
    table: new CacheTable(new MemoryCacheStore({ clock }), () => {}),
    storeCopies: true, inflight: new Inflight(), revalidating: new Set(),
  };
  const limit = waitLimit(TOTAL, runtime)!;
  return { scheduler, up, ctx, limit };
}

interface Outcome { at: number | null; status: number | null; error: unknown; sub: Subscription; cache: unknown }

/** A waiter joining `KEY`'s leader now; what it got and when. */
function join(ctx: CacheContext, scheduler: VirtualTimeScheduler, limit: WaitLimit | null): Outcome {
  const out: Outcome = { at: null, status: null, error: null, sub: null!, cache: undefined };
  const req = gatewayRequest({ path: '/items', headers: { host: 'api.test' } });
  out.sub = new Observable<GatewayResponse>((s) => waitForLeader(ctx, s, req, KEY, KEY, limit)).subscribe({
    next: (res) => { out.status = res.status; out.at = scheduler.now(); out.cache = req.locals.cache; },
    error: (err) => { out.error = err; out.at = scheduler.now(); out.cache = req.locals.cache; },
  });
  return out;
}

/** Runs the virtual clock up to `t` ms. */
function runTo(scheduler: VirtualTimeScheduler, t: number): void {
  scheduler.schedule(() => {}, t - scheduler.now());
  scheduler.maxFrames = t;
  scheduler.flush();
}

describe('a coalesced waiter under its route\'s timeouts.total', () => {
  it('answers the timeout stage\'s 504 at its own deadline while the leader is still fetching, and the leader keeps its key', () => {
    const { scheduler, up, ctx, limit } = setup(null);
    const settle = ctx.inflight.lead(KEY);
    runTo(scheduler, 200);
    const a = join(ctx, scheduler, limit);
    runTo(scheduler, 300);
    const b = join(ctx, scheduler, limit);
    runTo(scheduler, 2000);
    expect([a.at, b.at]).toEqual([1200, 1300]);
    for (const w of [a, b]) {
      expect(w.error).toBeInstanceOf(GatewayTimeoutError);
      expect((w.error as Error).message).toBe(`no response from upstream within ${TOTAL}ms`);
    }
    expect([ctx.inflight.has(KEY), limit.deadlines.size, up.calls]).toEqual([true, 0, 0]);
    settle(null); // the leader's miss ends later: nobody is left to go upstream
    expect(up.calls).toBe(0);
  });

  it('stops its own request and answers 504 at its deadline when the leader failed first (not a second total)', () => {
    const { scheduler, up, ctx, limit } = setup(null);
    const settle = ctx.inflight.lead(KEY);
    const w = join(ctx, scheduler, limit);
    runTo(scheduler, 700);
    settle(null);
    expect([up.calls, up.open]).toEqual([1, 1]);
    runTo(scheduler, 5000);
    expect(w.at).toBe(1000);
    expect(w.error).toBeInstanceOf(GatewayTimeoutError);
    expect([up.open, limit.deadlines.size]).toEqual([0, 0]);
  });

  it('passes on its own request\'s answer within the deadline and leaves the list at the head', () => {
    const { scheduler, ctx, limit } = setup(100);
    const settle = ctx.inflight.lead(KEY);
    const w = join(ctx, scheduler, limit);
    runTo(scheduler, 500);
    settle(null);
    runTo(scheduler, 5000);
    expect([w.status, w.at, w.error, limit.deadlines.size]).toEqual([200, 600, null, 0]);
  });

  it('leaves the leader\'s waiters and the deadline list when its client goes away; the other waiters are served', () => {
    const { scheduler, up, ctx, limit } = setup(0);
    const settle = ctx.inflight.lead(KEY);
    const gone = join(ctx, scheduler, limit);
    const stays = join(ctx, scheduler, limit);
    runTo(scheduler, 100);
    gone.sub.unsubscribe();
    expect(limit.deadlines.size).toBe(1);
    settle(null);
    runTo(scheduler, 5000);
    expect([gone.at, stays.status, up.calls, limit.deadlines.size]).toEqual([null, 200, 1, 0]);
  });

  it('takes the route\'s total merged over its service\'s, as the timeout stage does', () => {
    const at = (route: unknown, service: unknown) => routeTotal({ route: { timeouts: route }, serviceConfig: { timeouts: service } } as never);
    expect([at({ total: '2s' }, { total: '5s' }), at(undefined, { total: '5s' }), at({ perAttempt: '1s' }, { total: '5s' })]).toEqual(['2s', '5s', '5s']);
    expect([at(false, { total: '5s' }), at(undefined, false), at(undefined, undefined), at({ perAttempt: '1s' }, undefined)]).toEqual([null, null, null, null]);
  });
});

/** A stored 200 as a leader settles on it. */
function stored(now: number): CacheEntry {
  return {
    kind: 'entry', status: 200, statusText: undefined, headers: [], body: BufferedBody.of('entry'), vary: [],
    storedAt: now, initialAge: 0, freshUntil: now + 60_000, staleWhileRevalidate: 0, staleIfError: 0,
  };
}

describe('a coalesced waiter whose leader has its upstream head (review RA, H1; review RD, D1)', () => {
  it('is served the entry, not 504, when the leader\'s body ends within the waiter\'s total (it joined before the head)', () => {
    const { scheduler, up, ctx, limit } = setup(null);
    const settle = ctx.inflight.lead(KEY);
    const w = join(ctx, scheduler, limit);
    runTo(scheduler, 300);
    settle(undefined); // the leader's upstream answered: its body is still to come
    runTo(scheduler, 900);
    settle({ entry: stored(ctx.clock.now()), key: KEY, status: 'HIT' });
    expect([w.status, w.at, w.error, up.calls]).toEqual([200, 900, null, 0]);
  });

  it('leaves at its deadline and goes upstream itself when the leader\'s body is still coming (its client reads slowly), not 504 (review RD, D1)', () => {
    const { scheduler, up, ctx, limit } = setup(null);
    const settle = ctx.inflight.lead(KEY);
    const w = join(ctx, scheduler, limit);
    runTo(scheduler, 300);
    settle(undefined);
    runTo(scheduler, 5000); // the leader's body is held by its slow client: the waiter is not
    expect([w.at, w.error, up.calls, up.open, limit.deadlines.size]).toEqual([null, null, 1, 1, 0]);
    settle({ entry: stored(ctx.clock.now()), key: KEY, status: 'HIT' }); // too late: it left the leader
    expect([w.at, w.status]).toEqual([null, null]);
    w.sub.unsubscribe();
    expect(up.open).toBe(0);
  });

  it('is bounded the same way when it joins after the leader\'s head, and gets one answer', () => {
    const { scheduler, up, ctx, limit } = setup(null);
    const settle = ctx.inflight.lead(KEY);
    runTo(scheduler, 100);
    settle(undefined);
    settle(undefined); // a second head (a revalidation's 304, then the request again) tells nobody twice
    runTo(scheduler, 200);
    const w = join(ctx, scheduler, limit);
    runTo(scheduler, 1100);
    settle({ entry: stored(ctx.clock.now()), key: KEY, status: 'HIT' });
    settle(null); // settles once: later calls do nothing
    expect([w.status, w.at, w.error, up.calls]).toEqual([200, 1100, null, 0]);
  });

  it('goes upstream itself, bounded by the timeout stage (not here), when the leader fails after its head', () => {
    const { scheduler, up, ctx, limit } = setup(null);
    const settle = ctx.inflight.lead(KEY);
    const w = join(ctx, scheduler, limit);
    settle(undefined);
    runTo(scheduler, 3000);
    settle(null); // the leader's body failed
    runTo(scheduler, 9000);
    expect([w.at, w.error, up.calls, up.open, limit.deadlines.size]).toEqual([null, null, 1, 1, 0]);
    w.sub.unsubscribe();
    expect(up.open).toBe(0);
  });

  it('keeps a key\'s head mark through the table\'s growth and clears it with the key', () => {
    const { scheduler, up, ctx, limit } = setup(null);
    const settle = ctx.inflight.lead(KEY);
    settle(undefined);
    const others = Array.from({ length: 100 }, (_, i) => ctx.inflight.lead(`${KEY}/${i}`)); // grows the table past 64 slots
    const w = join(ctx, scheduler, limit); // told of the head: at its deadline it goes upstream itself
    for (const s of others) s(null);
    runTo(scheduler, 5000);
    expect([w.error, up.calls]).toEqual([null, 1]);
    settle(null);
    const again = ctx.inflight.lead(KEY); // a new leader: no head yet
    const v = join(ctx, scheduler, limit);
    runTo(scheduler, 10000);
    expect([v.at, (v.error as Error | null)?.name, up.calls]).toEqual([5000 + TOTAL, 'GatewayTimeoutError', 1]);
    again(null);
  });

  it('is logged MISS when its deadline answers it (the access log\'s cache field, review RA L1)', () => {
    const { scheduler, ctx, limit } = setup(null);
    const settle = ctx.inflight.lead(KEY);
    const w = join(ctx, scheduler, limit);
    runTo(scheduler, 5000);
    expect([w.at, w.cache]).toEqual([TOTAL, 'MISS']);
    settle(null);
  });

  it('refuses a waitTimeout of 0 and names waitTimeout in its errors (review RA L2)', () => {
    const runtime = virtualRuntime(new VirtualTimeScheduler());
    expect(() => waitLimit(0, runtime)).toThrow(new TypeError('waitTimeout: expected more than 0 ms (null for no bound)'));
    expect(() => waitLimit('soon' as never, runtime)).toThrow(/^waitTimeout: expected a duration/);
  });
});
