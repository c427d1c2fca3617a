import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { namespaced } from '../../lib/stages/cache/index.ts';
import type { CacheRecord, CacheStore } from '../../lib/stages/cache/entry.ts';
import { baseKey, KeyMemo } from '../../lib/stages/cache/key.ts';
import type { GatewayRequest } from '../../lib/types.ts';
import { gatewayRequest } from '../support/request.ts';

/** Requests that differ in one part or another: few values each, so parts repeat and paths collide in the memo. */
const requests = fc.record({
  method: fc.constantFrom('GET', 'HEAD', 'POST'),
  path: fc.constantFrom('/a', '/b', '/ab', '/ba', '/a/', '/items/1', '/items/2', '/itemz/1', '', '/é'),
  query: fc.constantFrom('', 'x=1', 'b=2&a=1', 'a=1&b=2', 'x=1&x=2'),
  emptyQuery: fc.boolean(),
  host: fc.constantFrom(undefined, 'api.test', 'Api.Test', 'other.test', 'api.test:8080'),
  protocol: fc.constantFrom('http', 'https'),
  viaTrustedProxy: fc.boolean(),
  forwardedProto: fc.constantFrom(undefined, 'https', 'http', 'ftp'),
}).map((r): GatewayRequest => gatewayRequest({
  method: r.method, path: r.path, query: r.query, emptyQuery: r.emptyQuery && r.query === '', protocol: r.protocol, viaTrustedProxy: r.viaTrustedProxy,
  headers: {
    ...(r.host !== undefined ? { host: r.host } : {}),
    ...(r.forwardedProto !== undefined ? { 'x-forwarded-proto': r.forwardedProto } : {}),
  },
}));

describe('KeyMemo', () => {
  it('gives the key baseKey builds, for any sequence of requests', () => {
    fc.assert(fc.property(fc.array(requests, { minLength: 1, maxLength: 60 }), (reqs) => {
      const memo = new KeyMemo();
      for (const req of reqs) expect(memo.baseKey(req)).toBe(baseKey(req));
    }), { numRuns: 300 });
  });

  it('gives the same string object for a request whose parts were seen, and a new one after a collision took its place', () => {
    const memo = new KeyMemo();
    const req = (path: string, host = 'api.test'): GatewayRequest => gatewayRequest({ path, headers: { host } });
    const first = memo.baseKey(req('/items/1'));
    // The edge makes new strings per request: equal parts, other objects.
    expect(memo.baseKey(req(['/items', '1'].join('/')))).toBe(first);
    // '/items/1' and '/itemz/1' share the memo's entry (length and last character): the second takes it over.
    expect(memo.baseKey(req('/itemz/1'))).toBe('GET http://api.test/itemz/1');
    const again = memo.baseKey(req('/items/1'));
    expect(again).toBe(first); // equal text,
    expect(Object.is(memo.baseKey(req('/items/1')), again)).toBe(true); // and kept again
    // another host on the same path is another key
    expect(memo.baseKey(req('/items/1', 'Other.Test'))).toBe('GET http://other.test/items/1');
  });
});

describe('KeyMemo and a bare ?', () => {
  it('gives /x and /x? their own keys, in either order (review RB)', () => {
    const memo = new KeyMemo();
    const plain = gatewayRequest({ path: '/x', headers: { host: 'api.test' } });
    const bare = gatewayRequest({ path: '/x', emptyQuery: true, headers: { host: 'api.test' } });
    expect([memo.baseKey(plain), memo.baseKey(bare), memo.baseKey(plain), memo.baseKey(bare)])
      .toEqual(['GET http://api.test/x', 'GET http://api.test/x?', 'GET http://api.test/x', 'GET http://api.test/x?']);
  });
});

describe('namespaced', () => {
  it('prefixes every key with its service, whatever keys came before', () => {
    const seen: string[] = [];
    const inner: CacheStore = {
      get: (key) => { seen.push(key); return undefined; },
      set: (key: string, _r: CacheRecord) => { seen.push(key); },
    };
    const view = namespaced(inner, 'svc');
    // keys of one length alternating, and a key repeated
    const keys = ['GET http://a/1', 'GET http://b/1', 'GET http://a/1', 'GET http://a/1', 'GET http://a/22'];
    for (const k of keys) void view.get(k);
    void view.set('GET http://b/1', { kind: 'vary', names: [] }, 1);
    expect(seen).toEqual([...keys, 'GET http://b/1'].map((k) => `svc ${k}`));
  });
});
