import { Observable, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { GatewayTimeoutError } from '../../lib/errors.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { Router } from '../../lib/router/router.ts';
import { InFlight, type InFlightEntry } from '../../lib/server/in-flight.ts';
import { addressText } from '../../lib/server/remote-address.ts';
import { requestIds } from '../../lib/server/request-id.ts';
import { timeout } from '../../lib/stages/timeout/timeout.ts';
import type { GatewayRequest, GatewayResponse } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/**
 * The per-request shortcuts of the edge's hot path (docs/performance-hot-path.md):
 * each does what the slower code it replaced did.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('request ids', () => {
  it('counts up behind one random 64-bit prefix per generator', () => {
    const next = requestIds();
    const a = /^([0-9a-f]{16})-(\d+)$/.exec(next());
    const b = /^([0-9a-f]{16})-(\d+)$/.exec(next());
    expect(a).not.toBeNull();
    expect(b![1]).toBe(a![1]);
    expect(b![2]).toBe(String(Number(a![2]) + 1));
    // Another process (or worker thread) draws another prefix.
    expect(requestIds('counter')().split('-')[0]).not.toBe(a![1]);
  });

  it('gives UUIDs with uuid, and refuses anything else when built', () => {
    const next = requestIds('uuid');
    const ids = new Set([next(), next(), next()]);
    expect(ids.size).toBe(3);
    for (const id of ids) expect(id).toMatch(UUID);
    expect(() => requestIds('ulid' as never)).toThrow(TypeError);
  });
});

describe('remote address text', () => {
  it('writes IPv4 dotted and IPv6 as uWS does: eight 4-digit groups, nothing compressed', () => {
    expect(addressText(new Uint8Array([127, 0, 0, 1]))).toBe('127.0.0.1');
    expect(addressText(new Uint8Array([10, 200, 3, 255]))).toBe('10.200.3.255');
    const mapped = new Uint8Array(16);
    mapped.set([0xff, 0xff, 127, 0, 0, 1], 10);
    expect(addressText(mapped)).toBe('0000:0000:0000:0000:0000:ffff:7f00:0001');
    const v6 = Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0xab, 0xcd, 0x00, 0x0e]);
    expect(addressText(v6)).toBe('2001:0db8:0000:0000:0000:0000:abcd:000e');
    expect(addressText(new Uint8Array(0))).toBe('');
  });
});

function entry(log: string[], name: string): InFlightEntry {
  return { prevInFlight: null, nextInFlight: null, unsubscribe: () => log.push(`unsubscribe ${name}`), add: () => {} };
}

describe('InFlight', () => {
  it('adds, deletes (once) and lists entries as the Set of subscriptions did', () => {
    const log: string[] = [];
    const list = new InFlight();
    const [a, b, c] = ['a', 'b', 'c'].map((n) => entry(log, n)) as [InFlightEntry, InFlightEntry, InFlightEntry];
    list.add(a);
    list.add(b);
    list.add(c);
    list.add(b);
    expect(list.size).toBe(3);
    expect(list.delete(b)).toBe(true);
    expect(list.delete(b)).toBe(false);
    expect(list.has(b)).toBe(false);
    expect(list.has(a) && list.has(c)).toBe(true);
    // Entries may leave while the list is walked (unsubscribe takes them off).
    for (const e of list) {
      e.unsubscribe();
      list.delete(e);
    }
    expect(log.sort()).toEqual(['unsubscribe a', 'unsubscribe c']);
    expect(list.size).toBe(0);
    list.add(a);
    list.clear();
    expect([...list]).toEqual([]);
    expect(list.has(a)).toBe(false);
  });
});

describe('Router shortcuts', () => {
  it('gives a route without :params one shared frozen params object, and a :param route its own', () => {
    const router = new Router<string>().add({ path: '/*', value: 'all' }).add({ path: '/users/:id', value: 'user' });
    const all = router.match('GET', '/a/b');
    expect(all.route.value).toBe('all');
    expect(all.params).toEqual({});
    expect(Object.isFrozen(all.params)).toBe(true);
    const u1 = router.match('GET', '/users/1');
    const u2 = router.match('GET', '/users/2');
    expect(u1.params).toEqual({ id: '1' });
    expect(u2.params).toEqual({ id: '2' });
  });
});

function request(): GatewayRequest {
  return gatewayRequest();
}

describe('timeout: one deadline list per stage', () => {
  it('keeps one timer for all the requests in flight, none once they are answered', () => {
    const vts = new VirtualTimeScheduler();
    const answers: (() => void)[] = [];
    const ok: GatewayResponse = { status: 200, headers: [], body: null };
    const h = timeout({ head: 10, runtime: virtualRuntime(vts) })(() => new Observable<GatewayResponse>((s) => {
      answers.push(() => { s.next(ok); s.complete(); });
    }));
    for (let i = 0; i < 100; i++) h(request()).subscribe();
    expect(vts.actions).toHaveLength(1);
    for (const answer of answers) answer();
    expect(vts.actions).toHaveLength(0);
  });

  it('expires each request at its own deadline, however many share the timer', () => {
    const vts = new VirtualTimeScheduler();
    const h = timeout({ head: 10, runtime: virtualRuntime(vts) })(() => new Observable<GatewayResponse>());
    const expired: number[] = [];
    const start = (at: number): void => {
      vts.schedule(() => h(request()).subscribe({ error: (e: unknown) => { expect(e).toBeInstanceOf(GatewayTimeoutError); expired.push(vts.now()); } }), at);
    };
    // Requests at 0, 3 and 3, and one at 12 (after the first three expired, with the list empty).
    for (const at of [0, 3, 3, 12]) start(at);
    vts.flush();
    expect(expired).toEqual([10, 13, 13, 22]);
    expect(vts.actions).toHaveLength(0);
  });
});
