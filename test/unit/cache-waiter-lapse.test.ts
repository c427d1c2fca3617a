import { Observable, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { waitForLeader, waitLimit } from '../../lib/stages/cache/coalesce.ts';
import type { CacheContext } from '../../lib/stages/cache/context.ts';
import { Inflight } from '../../lib/stages/cache/inflight.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { CacheTable } from '../../lib/stages/cache/table.ts';
import type { GatewayResponse } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

const KEY = 'GET api.test/items';

describe('a coalesced waiter whose leader had its head and then settled on nothing it can use (review RE, E1, of 16e3450)', () => {
  it.each([['gave up (null)', null], ['stored another Vary variant', 'vary']] as const)('a waiter whose leader had its head and then %s sends one request and gets one answer', (_n, how) => {
    const scheduler = new VirtualTimeScheduler();
    const runtime = virtualRuntime(scheduler);
    const clock = { now: () => runtime.wallNow() };
    let calls = 0;
    let open = 0;
    const ctx: CacheContext = {
      // the waiter's own request: upstream answers after 800 ms
      next: () => new Observable<GatewayResponse>((s) => {
        calls++; open++;
        const t = scheduler.schedule(() => s.next({ status: 200, headers: ['cache-control', 'no-store'], body: BufferedBody.of('own') }), 800);
        // the handler completes when its body has ended: a body that streams for 3 s
        const e = scheduler.schedule(() => s.complete(), 3000);
        return () => { open--; t.unsubscribe(); e.unsubscribe(); };
      }),
      policy: { statuses: new Set([200]), ttl: 60_000, maxTtl: null, staleWhileRevalidate: 0, staleIfError: 0 },
      maxEntrySize: 1 << 20, clock,
      table: new CacheTable(new MemoryCacheStore({ clock }), () => {}),
      storeCopies: true, inflight: new Inflight(), revalidating: new Set(),
    };
    const limit = waitLimit(1000, runtime)!;
    const settle = ctx.inflight.lead(KEY);
    const answers: Array<[number, number]> = [];
    const errors: unknown[] = [];
    const req = gatewayRequest({ path: '/items', headers: { host: 'api.test' } });
    new Observable<GatewayResponse>((s) => waitForLeader(ctx, s, req, KEY, KEY, limit)).subscribe({
      next: (res) => answers.push([scheduler.now(), res.status]),
      error: (e) => errors.push(e),
    });
    scheduler.schedule(() => settle(undefined), 100); // leader's head
    scheduler.schedule(() => settle(how === null ? null : { entry: { kind: 'entry', status: 200, statusText: undefined, headers: [], body: BufferedBody.of('gz'), vary: ['accept-encoding'], storedAt: 0, initialAge: 0, freshUntil: 1e12, staleWhileRevalidate: 0, staleIfError: 0 } as never, key: KEY + ' other-variant', status: 'HIT' }), 500);      // leader's client left mid-body: waiter goes upstream itself
    scheduler.schedule(() => {}, 5000);
    scheduler.maxFrames = 5000;
    scheduler.flush();
    expect({ calls, answers, errors }).toEqual({ calls: 1, answers: [[1300, 200]], errors: [] });
  });
});
