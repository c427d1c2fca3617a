import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { deltaSeconds, parseCacheControl, storageDirectives } from '../../lib/stages/cache/cache-control.ts';
import { decodeRecord, encodeRecord } from '../../lib/stages/cache/codec.ts';
import { storableHeaders, type CacheEntry } from '../../lib/stages/cache/entry.ts';
import { ageSeconds, entryState, freshnessOf, retention, type FreshnessPolicy } from '../../lib/stages/cache/freshness.ts';
import { Inflight } from '../../lib/stages/cache/inflight.ts';
import { baseKey, parseVary, sortedQuery, variantKey } from '../../lib/stages/cache/key.ts';
import { planStorage, requestMode } from '../../lib/stages/cache/policy.ts';
import type { GatewayRequest } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

const policy: FreshnessPolicy = { ttl: 60_000, maxTtl: null, staleWhileRevalidate: 0, staleIfError: 0 };

function request(over: Partial<GatewayRequest> = {}): GatewayRequest {
  return gatewayRequest({ path: '/a', headers: { host: 'Api.Test' }, protocol: 'https', ...over });
}

describe('parseCacheControl', () => {
  it('reads directives case-insensitively with and without values', () => {
    const cc = parseCacheControl('Public, MAX-AGE=60 ,s-maxage = 30, no-transform');
    expect({ ...cc }).toEqual({ public: true, 'max-age': '60', 's-maxage': '30', 'no-transform': true });
  });

  it('keeps commas inside quoted values and unescapes them', () => {
    const cc = parseCacheControl('private="set-cookie, x-a", max-age=5, ext="a\\"b"');
    expect(cc.private).toBe('set-cookie, x-a');
    expect(cc['max-age']).toBe('5');
    expect(cc.ext).toBe('a"b');
  });

  it('keeps the first of a repeated directive and answers empty for no header', () => {
    expect(parseCacheControl('max-age=1, max-age=100')['max-age']).toBe('1');
    expect(Object.keys(parseCacheControl(undefined))).toEqual([]);
  });

  it('counts a malformed delta-seconds as zero and an absent one as undefined', () => {
    const cc = parseCacheControl('max-age=abc, stale-if-error');
    expect(deltaSeconds(cc, 'max-age')).toBe(0);
    expect(deltaSeconds(cc, 'stale-if-error')).toBe(0);
    expect(deltaSeconds(cc, 's-maxage')).toBeUndefined();
    expect(deltaSeconds(parseCacheControl('max-age=99999999999'), 'max-age')).toBe(2_147_483_648);
  });

  it('works out what storing reads from a value once, as deltaSeconds and the directives read it', () => {
    const d = storageDirectives(parseCacheControl('max-age=abc, S-MAXAGE=7, stale-while-revalidate=3, proxy-revalidate'));
    expect(d).toEqual({ refuse: false, lifetime: 7, staleWhileRevalidate: 3, staleIfError: undefined, mustRevalidate: true });
    expect(storageDirectives(parseCacheControl('max-age=abc, stale-if-error'))).toMatchObject({ lifetime: 0, staleIfError: 0, mustRevalidate: false });
    for (const refused of ['no-store', 'private="set-cookie"', 'public, no-cache']) expect(storageDirectives(parseCacheControl(refused)).refuse).toBe(true);
    expect(storageDirectives(parseCacheControl(undefined))).toEqual({ refuse: false, lifetime: undefined, staleWhileRevalidate: undefined, staleIfError: undefined, mustRevalidate: false });
    // one parse and one derivation per header text: the same objects each time
    expect(storageDirectives(parseCacheControl('max-age=60'))).toBe(storageDirectives(parseCacheControl('max-age=60')));
  });
});

describe('cache keys', () => {
  it('names GET and HEAD the same, with a lower-case host and sorted query', () => {
    const get = baseKey(request({ query: 'z=1&a=2' }));
    const head = baseKey(request({ method: 'HEAD', query: 'a=2&z=1' }));
    expect(get).toBe('GET https://api.test/a?a=2&z=1');
    expect(head).toBe(get);
  });

  it('drops empty query parameters when sorting', () => {
    expect(sortedQuery('b=1&&a=2&')).toBe('?a=2&b=1');
    expect(sortedQuery('&&')).toBe('');
    expect(sortedQuery('x')).toBe('?x');
  });

  it('appends the named request header values to build a variant key', () => {
    const k1 = variantKey('B', { accept: 'text/html', 'accept-language': ' en ' }, ['accept', 'accept-language']);
    const k2 = variantKey('B', { accept: 'text/html' }, ['accept', 'accept-language']);
    expect(k1).toBe('B\naccept:text/html\naccept-language:en');
    expect(k2).not.toBe(k1);
    expect(variantKey('B', {}, [])).toBe('B');
  });

  it('parses Vary into sorted unique lower-case names, or * when it varies on anything', () => {
    expect(parseVary('Accept-Encoding, accept, ACCEPT')).toEqual(['accept', 'accept-encoding']);
    expect(parseVary('accept, *')).toBe('*');
    expect(parseVary(undefined)).toEqual([]);
  });
});

describe('freshness', () => {
  it('prefers s-maxage, then max-age, then Expires minus Date, then the route TTL', () => {
    const now = 1_000_000;
    expect(freshnessOf(parseCacheControl('max-age=10, s-maxage=20'), undefined, undefined, undefined, now, policy).freshUntil).toBe(now + 20_000);
    expect(freshnessOf(parseCacheControl('max-age=10'), undefined, undefined, undefined, now, policy).freshUntil).toBe(now + 10_000);
    const date = 'Sun, 06 Nov 1994 08:49:37 GMT';
    const expires = 'Sun, 06 Nov 1994 08:50:07 GMT';
    expect(freshnessOf(parseCacheControl(undefined), expires, date, undefined, now, policy).freshUntil).toBe(now + 30_000);
    expect(freshnessOf(parseCacheControl(undefined), '0', date, undefined, now, policy).freshUntil).toBe(now);
    expect(freshnessOf(parseCacheControl(undefined), undefined, undefined, undefined, now, policy).freshUntil).toBe(now + 60_000);
  });

  it('caps lifetimes at maxTtl and spends the upstream Age', () => {
    const f = freshnessOf(parseCacheControl('max-age=100'), undefined, undefined, '30', 0, { ...policy, maxTtl: 50_000 });
    expect(f.freshUntil).toBe(20_000);
    expect(ageSeconds(f, 5_999)).toBe(35);
  });

  it('walks fresh, stale, stale-if-error and expired as time passes', () => {
    const f = freshnessOf(parseCacheControl('max-age=10, stale-while-revalidate=5, stale-if-error=20'), undefined, undefined, undefined, 0, policy);
    expect(entryState(f, 9_999)).toBe('fresh');
    expect(entryState(f, 10_000)).toBe('stale');
    expect(entryState(f, 15_000)).toBe('stale-if-error');
    expect(entryState(f, 30_000)).toBe('expired');
    expect(retention(f, 0)).toBe(30_000);
  });

  it('takes stale windows from the route when the upstream sends none and drops them under must-revalidate', () => {
    const route = { ...policy, staleWhileRevalidate: 7_000, staleIfError: 9_000 };
    const f = freshnessOf(parseCacheControl('max-age=1'), undefined, undefined, undefined, 0, route);
    expect([f.staleWhileRevalidate, f.staleIfError]).toEqual([7_000, 9_000]);
    const strict = freshnessOf(parseCacheControl('max-age=1, must-revalidate, stale-if-error=60'), undefined, undefined, undefined, 0, route);
    expect([strict.staleWhileRevalidate, strict.staleIfError]).toEqual([0, 0]);
  });
});

describe('request and response rules', () => {
  it('classifies requests as lookup, refresh or bypass', () => {
    expect(requestMode(request(), false)).toBe('lookup');
    expect(requestMode(request({ method: 'HEAD' }), false)).toBe('lookup');
    expect(requestMode(request({ method: 'DELETE' }), false)).toBe('bypass');
    expect(requestMode(request({ headers: { authorization: 'x' } }), false)).toBe('bypass');
    expect(requestMode(request({ headers: { authorization: 'x' } }), true)).toBe('lookup');
    expect(requestMode(request({ headers: { 'cache-control': 'no-cache' } }), false)).toBe('refresh');
    expect(requestMode(request({ headers: { pragma: 'no-cache' } }), false)).toBe('refresh');
    expect(requestMode(request({ headers: { 'cache-control': 'no-store' } }), false)).toBe('bypass');
  });

  it('plans storage only for listed statuses with time to live', () => {
    const p = { ...policy, statuses: new Set([200]) };
    expect(planStorage({ status: 200, headers: ['vary', 'Accept'], body: null }, 0, p)?.vary).toEqual(['accept']);
    expect(planStorage({ status: 201, headers: [], body: null }, 0, p)).toBeNull();
    expect(planStorage({ status: 200, headers: ['cache-control', 'public', 'cache-control', 'no-store'], body: null }, 0, p)).toBeNull();
    expect(planStorage({ status: 200, headers: ['expires', 'garbage'], body: null }, 0, p)).toBeNull();
  });

  it('strips hop-by-hop headers, those named by Connection, and age', () => {
    expect(storableHeaders([
      'connection', 'close, x-hop', 'x-hop', '1', 'transfer-encoding', 'chunked', 'age', '3',
      'set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-type', 'text/plain',
    ])).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-type', 'text/plain']);
  });
});

describe('record codec', () => {
  const entry: CacheEntry = {
    kind: 'entry', status: 203, statusText: 'Non-Authoritative', headers: ['content-type', 'application/octet-stream'],
    vary: ['accept'], body: new BufferedBody([Buffer.from([0, 255, 10]), Buffer.from('tail')]),
    storedAt: 1.5e12, initialAge: 4, freshUntil: 1.5e12 + 60_000, staleWhileRevalidate: 1_000, staleIfError: 2_000,
  };

  it('round-trips an entry with a binary body', () => {
    const back = decodeRecord(encodeRecord(entry));
    expect(back).toMatchObject({ ...entry, body: expect.anything() as unknown });
    expect(back?.kind === 'entry' && Buffer.concat(back.body!.chunks as Uint8Array[])).toEqual(Buffer.from([0, 255, 10, 116, 97, 105, 108]));
  });

  it('tells a missing body from an empty one and round-trips vary records', () => {
    const none = decodeRecord(encodeRecord({ ...entry, statusText: undefined, body: null }));
    const empty = decodeRecord(encodeRecord({ ...entry, body: new BufferedBody([]) }));
    expect(none?.kind === 'entry' && none.body).toBeNull();
    expect(none?.kind === 'entry' && none.statusText).toBeUndefined();
    expect(empty?.kind === 'entry' && empty.body?.length).toBe(0);
    expect(decodeRecord(encodeRecord({ kind: 'vary', names: ['a', 'b'] }))).toEqual({ kind: 'vary', names: ['a', 'b'] });
  });

  it('answers undefined for bytes it does not understand', () => {
    expect(decodeRecord(Buffer.from('hello world'))).toBeUndefined();
    expect(decodeRecord(Buffer.from([1, 0, 0, 0, 3, 123, 123, 123]))).toBeUndefined();
  });
});

describe('Inflight', () => {
  it('calls every waiter once even when one leaves during its callback', () => {
    const inflight = new Inflight<string>();
    const settle = inflight.lead('k');
    const got: string[] = [];
    const leaves: Array<() => void> = [];
    for (let i = 0; i < 3; i++) {
      leaves.push(inflight.join('k', (v) => {
        got.push(`${i}:${v}`);
        leaves[i]!();
      }));
    }
    settle('x');
    settle('y');
    expect(got).toEqual(['0:x', '1:x', '2:x']);
    expect(inflight.has('k')).toBe(false);
  });

  it('does not call a waiter that left before settling', () => {
    const inflight = new Inflight<string>();
    const settle = inflight.lead('k');
    const got: unknown[] = [];
    const leave = inflight.join('k', (v) => got.push(v));
    leave();
    settle(null);
    expect(got).toEqual([]);
  });
});
