import type { ServerResponse } from 'node:http';
import { VirtualTimeScheduler } from 'rxjs';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { virtualRuntime } from '../../lib/runtime.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * Review RA's H1 (of ca96cfb): a coalesced waiter was bounded by its route's
 * `timeouts.total` until its own response head, which comes only once the
 * leader's whole body is stored (or, on its own request with validators, a
 * held 304 once its body is). A leader whose upstream answered at once but
 * whose body took longer than `total` was served 200, and its waiters 504.
 * `total` bounds a head: the waiter is served the entry if the leader's body
 * ends within its bound; past its bound it leaves the leader (whose upstream
 * sends its body slowly; a slow leading client no longer holds it since
 * session 13: cache-slow-leader-waiters) and goes upstream itself, as nginx's
 * proxy_cache_lock_timeout does.
 * A YAML gateway on virtual time; the upstream sends each part when the
 * test says, so no duration is asserted or relied on.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** Requests the upstream holds, in arrival order: the test answers them. */
async function setup() {
  const held: Array<{ headers: Record<string, string | string[] | undefined>; res: ServerResponse }> = [];
  const up = await startUpstream((req, res) => { held.push({ headers: req.headers, res }); });
  cleanups.push(() => up.close());
  const scheduler = new VirtualTimeScheduler();
  const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"], timeout: 1h, retry: false, circuitBreaker: false }
routes:
  - { path: /*, service: api, cache: { ttl: 30s }, timeouts: { total: 600ms } }
`, defaultPipeline, process.env, { runtime: virtualRuntime(scheduler) });
  cleanups.push(() => gw.close());
  /** Runs the virtual clock up to `frame`; `frames()`: when the actions still pending are due. */
  const until = (frame: number): void => void (scheduler.schedule(() => {}, frame - scheduler.now()), scheduler.maxFrames = frame, scheduler.flush());
  const frames = () => scheduler.actions.map((a) => a.delay);
  return { held, gw, until, frames };
}

/** A leader at 0 whose upstream has sent its head and part of the body, and a waiter that joined at 100 (its bound at 700). */
async function headWithBodyToCome() {
  const { held, gw, until, frames } = await setup();
  const get = () => request(`${gw.url}/slow-body`);
  const leader = get();
  await vi.waitFor(() => expect(held).toHaveLength(1));
  until(100);
  const waiter = get().then(async (r) => ({ status: r.statusCode, cache: r.headers['x-cache'], body: await r.body.text() }));
  await vi.waitFor(() => expect(frames()).toContain(700)); // the waiter joined: its bound is on the clock
  held[0]!.res.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
  held[0]!.res.write('first ');
  return { held, until, waiter, l: await leader, get };
}

describe('a coalesced waiter under timeouts.total whose upstream answered in time (review RA, H1)', () => {
  it('is served the leader\'s entry (HIT), not 504, when the leader\'s head came and its body ends within the waiter\'s bound', async () => {
    const { held, until, waiter, l } = await headWithBodyToCome();
    until(650); // past the leader's own total (600: it bounds the head, which came), before the waiter's 700
    held[0]!.res.end('second');
    expect([l.statusCode, await l.body.text()]).toEqual([200, 'first second']);
    expect([await waiter, held.length]).toEqual([{ status: 200, cache: 'HIT', body: 'first second' }, 1]);
  });

  it('goes upstream itself at its bound, not 504, when the leader\'s body is still coming then (its upstream is slow: review RD, D1)', async () => {
    const { held, until, waiter, l } = await headWithBodyToCome();
    until(750); // past the waiter's 700: it left the leader for a request of its own (its own total is due at 1300)
    await vi.waitFor(() => expect(held).toHaveLength(2));
    held[1]!.res.writeHead(200, { 'cache-control': 'max-age=60' }).end('its own');
    expect(await waiter).toEqual({ status: 200, cache: 'MISS', body: 'its own' });
    held[0]!.res.end('second');
    expect([l.statusCode, await l.body.text()]).toEqual([200, 'first second']);
  });

  it('stores the answer of a waiter that left a slow leader, so the next request is a hit, not another total behind that leader (review RE, E2; nginx\'s proxy_cache_lock_age)', async () => {
    const { held, until, waiter, get } = await headWithBodyToCome();
    until(750); // the waiter lapses at 700 and goes upstream itself
    await vi.waitFor(() => expect(held).toHaveLength(2));
    held[1]!.res.writeHead(200, { 'cache-control': 'max-age=60' }).end('its own');
    expect(await waiter).toEqual({ status: 200, cache: 'MISS', body: 'its own' });
    until(800);
    const third = get().then(async (r) => ({ status: r.statusCode, cache: r.headers['x-cache'], body: await r.body.text() }));
    // Before: it joined the same slow leader and waited for its own bound (due at 1400 on the virtual clock, never run here).
    const outcome = await Promise.race([third, new Promise((r) => setTimeout(() => r('still waiting'), 1000))]);
    expect([outcome, held.length]).toEqual([{ status: 200, cache: 'HIT', body: 'its own' }, 2]);
    held[0]!.res.end('second');
  });

  it('gets its 304 when its own request (after the leader\'s answer was not storable) answered in time and its body streams past total', async () => {
    const { held, gw, until, frames } = await setup();
    const get = (headers: Record<string, string> = {}) => request(`${gw.url}/held`, { headers }).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    const leader = get();
    await vi.waitFor(() => expect(held).toHaveLength(1));
    until(100);
    const waiter = get({ 'if-none-match': '"a"' });
    await vi.waitFor(() => expect(frames()).toContain(700));
    until(200);
    held[0]!.res.writeHead(200, { 'cache-control': 'no-store' }).end('personal'); // nothing to share: the waiter goes upstream
    await vi.waitFor(() => expect(held).toHaveLength(2));
    expect(held[1]!.headers['if-none-match']).toBeUndefined(); // the cache asks for the whole response
    held[1]!.res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"a"' });
    held[1]!.res.write('first ');
    // Its head reached the cache: the 304 is held for the body, and the bound at 700 is off the clock.
    await vi.waitFor(() => expect(frames()).not.toContain(700));
    until(5000);
    held[1]!.res.end('second');
    expect([await leader, await waiter]).toEqual([{ status: 200, body: 'personal' }, { status: 304, body: '' }]);
  });
});
