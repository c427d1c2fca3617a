import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * Byte ranges from the cache (RFC 9110 §14): a hit of a stored 200 answers
 * one satisfiable `bytes=` range with a 206 and those bytes, an
 * unsatisfiable one with a 416, as nginx's proxy_cache does; before, every
 * hit was the 200 whole. A Range on a miss goes upstream as it came, and
 * the upstream's 206 is never stored as the resource.
 */

const BODY = 'abcdefghijklmnopqrstuvwxyz0123456789'; // 36 bytes
const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An upstream with BODY under ETag `etag`, answering `bytes=a-b` itself with a 206 when `ranges`; keeps what it got. */
async function upstream(etag = '"v1"', ranges = false) {
  const seen: IncomingHttpHeaders[] = [];
  const up = await startUpstream((req, res) => {
    req.resume();
    seen.push(req.headers);
    const head = { etag, 'last-modified': LAST_MODIFIED, 'cache-control': 'max-age=60', 'content-type': 'text/plain' };
    const m = ranges ? /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '') : null;
    if (m !== null) {
      const [a, b] = [Number(m[1]), Number(m[2])];
      res.writeHead(206, { ...head, 'content-range': `bytes ${a}-${b}/${BODY.length}` }).end(BODY.slice(a, b + 1));
      return;
    }
    // in three writes: the stored body may come in several chunks
    res.writeHead(200, head);
    res.write(BODY.slice(0, 10));
    res.write(BODY.slice(10, 20));
    res.end(BODY.slice(20));
  });
  cleanups.push(() => up.close());
  return { url: up.url, seen };
}

async function gateway(upstreamUrl: string): Promise<string> {
  const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${upstreamUrl}"] }
routes:
  - { path: /*, service: api, cache: { ttl: 60s } }
`);
  cleanups.push(() => gw.close());
  return gw.url;
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { method, headers, headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** A gateway whose cache holds /r (the first GET is the miss that stores it). */
async function warmed(etag?: string) {
  const up = await upstream(etag);
  const gw = await gateway(up.url);
  const first = await get(`${gw}/r`);
  expect([first.status, first.headers['x-cache'], first.body]).toEqual([200, 'MISS', BODY]);
  return { gw, up };
}

describe('a Range request answered from a stored 200', () => {
  it('gets a 206 with Content-Range and only those bytes; the full hit says Accept-Ranges: bytes', async () => {
    const { gw, up } = await warmed();
    const full = await get(`${gw}/r`);
    expect([full.status, full.headers['x-cache'], full.headers['accept-ranges'], full.body]).toEqual([200, 'HIT', 'bytes', BODY]);

    const part = await get(`${gw}/r`, { range: 'bytes=0-9' });
    expect([part.status, part.headers['x-cache'], part.headers['content-range'], part.headers['content-length'], part.body])
      .toEqual([206, 'HIT', 'bytes 0-9/36', '10', 'abcdefghij']);
    expect([part.headers.etag, part.headers['content-type']]).toEqual(['"v1"', 'text/plain']);

    // across the upstream's chunks, open-ended, suffix, a last-pos past the end, whitespace and the unit's case
    const cases: Array<[string, string, string]> = [
      ['bytes=8-21', 'bytes 8-21/36', BODY.slice(8, 22)],
      ['bytes=30-', 'bytes 30-35/36', '456789'],
      ['bytes=-4', 'bytes 32-35/36', '6789'],
      ['bytes=-100', 'bytes 0-35/36', BODY],
      ['bytes=35-999', 'bytes 35-35/36', '9'],
      ['Bytes= 2-3 ', 'bytes 2-3/36', 'cd'],
    ];
    for (const [range, contentRange, body] of cases) {
      const r = await get(`${gw}/r`, { range });
      expect([range, r.status, r.headers['content-range'], r.body]).toEqual([range, 206, contentRange, body]);
    }
    expect(up.seen).toHaveLength(1);
  });

  it('gets a 416 with Content-Range: bytes */36 and no body when no range overlaps the body', async () => {
    const { gw, up } = await warmed();
    for (const range of ['bytes=36-', 'bytes=100-200', 'bytes=-0', 'bytes=40-50, 60-']) {
      const r = await get(`${gw}/r`, { range });
      expect([range, r.status, r.headers['content-range'], r.headers['x-cache'], r.headers['content-length'], r.body])
        .toEqual([range, 416, 'bytes */36', 'HIT', '0', '']);
      expect([r.headers['content-type'], r.headers.etag, r.headers['last-modified']]).toEqual(['text/plain', '"v1"', LAST_MODIFIED]);
    }
    expect(up.seen).toHaveLength(1);
  });

  it('gets the 200 whole for several ranges, another unit, or a malformed range set', async () => {
    const { gw } = await warmed();
    for (const range of ['bytes=0-1,4-5', 'items=0-1', 'bytes=abc', 'bytes=5-2', 'bytes=', 'bytes=1-2;x']) {
      const r = await get(`${gw}/r`, { range });
      expect([range, r.status, r.headers['content-range'], r.body]).toEqual([range, 200, undefined, BODY]);
    }
    // several ranges of which one overlaps the body: that one (nginx does the same)
    const one = await get(`${gw}/r`, { range: 'bytes=0-1, 100-200' });
    expect([one.status, one.headers['content-range'], one.body]).toEqual([206, 'bytes 0-1/36', 'ab']);
  });

  it('honours If-Range: the stored strong ETag or Last-Modified date gets the part, anything else the 200 whole', async () => {
    const { gw } = await warmed();
    const range = 'bytes=0-2';
    const ask = (ifRange: string) => get(`${gw}/r`, { range, 'if-range': ifRange });
    expect((await ask('"v1"')).status).toBe(206);
    expect((await ask(LAST_MODIFIED)).status).toBe(206);
    for (const other of ['"v2"', 'W/"v1"', 'Thu, 22 Oct 2015 07:28:00 GMT', 'not a date']) {
      const r = await ask(other);
      expect([other, r.status, r.body]).toEqual([other, 200, BODY]);
    }
  });

  it('a weak stored ETag never matches If-Range', async () => {
    const { gw } = await warmed('W/"v1"');
    for (const ifRange of ['W/"v1"', '"v1"']) {
      const r = await get(`${gw}/r`, { range: 'bytes=0-2', 'if-range': ifRange });
      expect([ifRange, r.status, r.body]).toEqual([ifRange, 200, BODY]);
    }
    // without If-Range the weak entry still answers ranges
    expect((await get(`${gw}/r`, { range: 'bytes=0-2' })).body).toBe('abc');
  });

  it('a HEAD with Range ignores it (RFC 9110 §14.2: GET only): the 200 and its headers whole', async () => {
    const { gw } = await warmed();
    for (const range of ['bytes=0-9', 'bytes=50-']) {
      const r = await get(`${gw}/r`, { range }, 'HEAD');
      expect([range, r.status, r.headers['content-range'], r.headers['content-length'], r.headers['accept-ranges'], r.headers['x-cache'], r.body])
        .toEqual([range, 200, undefined, '36', 'bytes', 'HIT', '']);
    }
  });
});

describe('a stored 200 with a Content-Encoding and no strong ETag (review RB)', () => {
  it('does not say Accept-Ranges: bytes and answers a Range whole', async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { etag: 'W/"g1"', 'content-encoding': 'gzip', 'cache-control': 'max-age=60', 'content-type': 'text/plain' }).end(BODY);
    });
    cleanups.push(() => up.close());
    const gw = await gateway(up.url);
    expect((await get(`${gw}/g`)).headers['x-cache']).toBe('MISS');
    const hit = await get(`${gw}/g`);
    expect([hit.status, hit.headers['x-cache'], hit.headers['accept-ranges']]).toEqual([200, 'HIT', undefined]);
    for (const range of ['bytes=0-1', 'bytes=100-']) {
      const r = await get(`${gw}/g`, { range });
      expect([range, r.status, r.headers['content-range'], r.body]).toEqual([range, 200, undefined, BODY]);
    }
  });
});

describe('a part on a compression route (review RB)', () => {
  it('carries Vary: Accept-Encoding when its 200 would, and is not compressed', async () => {
    const big = 'x'.repeat(2000);
    const up = await startUpstream((req, res) => {
      req.resume();
      const type = req.url === '/png' ? 'image/png' : 'text/plain';
      res.writeHead(200, { etag: '"b1"', 'cache-control': 'max-age=60', 'content-type': type }).end(req.url === '/small' ? BODY : big);
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"] }
routes:
  - { path: /*, service: api, compression: true, cache: { ttl: 60s } }
`);
    cleanups.push(() => gw.close());
    const gzip = { 'accept-encoding': 'gzip' };
    for (const path of ['/big', '/small', '/png']) expect((await get(`${gw.url}${path}`)).headers['x-cache']).toBe('MISS');
    const whole = await get(`${gw.url}/big`, gzip);
    expect([whole.status, whole.headers['content-encoding'], whole.headers.vary]).toEqual([200, 'gzip', 'Accept-Encoding']);
    for (const headers of [gzip, {}]) {
      const part = await get(`${gw.url}/big`, { ...headers, range: 'bytes=0-9' });
      expect([part.status, part.headers['content-encoding'], part.headers.vary, part.body]).toEqual([206, undefined, 'Accept-Encoding', 'x'.repeat(10)]);
    }
    // the 200s of these have no Vary (under minSize; not a compressible type): neither have their parts
    for (const path of ['/small', '/png']) {
      const part = await get(`${gw.url}${path}`, { ...gzip, range: 'bytes=0-1' });
      expect([path, part.status, part.headers.vary]).toEqual([path, 206, undefined]);
    }
  });

  it('gives a 416 the Vary its 200 gets, and Content-Range: bytes */len (before: no Content-Type kept, so no Vary)', async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      const type = req.url === '/png' ? 'image/png' : 'text/plain';
      const vary = req.url === '/lang' ? { vary: 'Accept-Language' } : {};
      res.writeHead(200, { etag: '"b1"', 'cache-control': 'max-age=60', 'content-type': type, ...vary }).end(req.url === '/small' ? BODY : 'x'.repeat(2000));
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml('services:\n  api: { upstreams: ["' + up.url + '"] }\nroutes:\n  - { path: /*, service: api, compression: true, cache: { ttl: 60s } }\n');
    cleanups.push(() => gw.close());
    for (const path of ['/big', '/lang', '/small', '/png']) expect((await get(`${gw.url}${path}`)).headers['x-cache']).toBe('MISS');
    for (const headers of [{ 'accept-encoding': 'gzip' }, {}]) {
      const none = await get(`${gw.url}/big`, { ...headers, range: 'bytes=5000-' });
      expect([none.status, none.headers['x-cache'], none.headers['content-range'], none.headers['content-encoding'], none.headers.vary, none.body])
        .toEqual([416, 'HIT', 'bytes */2000', undefined, 'Accept-Encoding', '']);
    }
    const lang = await get(`${gw.url}/lang`, { 'accept-encoding': 'gzip', range: 'bytes=5000-' });
    expect([lang.status, lang.headers['content-range'], lang.headers.vary]).toEqual([416, 'bytes */2000', 'Accept-Language, Accept-Encoding']);
    // the 200s of these have no Vary (under minSize; not a compressible type): neither have their 416s
    for (const path of ['/small', '/png']) {
      const none = await get(`${gw.url}${path}`, { 'accept-encoding': 'gzip', range: 'bytes=5000-' });
      expect([path, none.status, none.headers.vary]).toEqual([path, 416, undefined]);
    }
  });
});

describe('a Range request answered from a stale entry', () => {
  it('gets the 206 with x-cache: STALE inside stale-while-revalidate', async () => {
    // Stored already stale: Age 100 past max-age 60, inside stale-while-revalidate.
    const up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { etag: '"s1"', age: '100', 'cache-control': 'max-age=60, stale-while-revalidate=600', 'content-type': 'text/plain' }).end(BODY);
    });
    cleanups.push(() => up.close());
    const gw = await gateway(up.url);
    expect((await get(`${gw}/s`)).headers['x-cache']).toBe('MISS');
    const part = await get(`${gw}/s`, { range: 'bytes=-3' });
    expect([part.status, part.headers['x-cache'], part.headers['content-range'], part.body]).toEqual([206, 'STALE', 'bytes 33-35/36', '789']);
  });
});

describe('a Range request answered from a stale entry refreshes it whole', () => {
  it('the background refresh carries no Range or If-Range, so the changed 200 is stored and a plain GET gets it', async () => {
    // v1 stored already stale (Age 100 past max-age 60, inside stale-while-revalidate); then the resource changes to v2.
    // The upstream answers ranges itself: a refresh carrying the client's Range would get a 206, which is never stored.
    let version = 'v1';
    const seen: IncomingHttpHeaders[] = [];
    const up = await startUpstream((req, res) => {
      req.resume();
      seen.push(req.headers);
      const body = `${version}:${BODY}`;
      const head = version === 'v1'
        ? { etag: '"v1"', age: '100', 'cache-control': 'max-age=60, stale-while-revalidate=600', 'content-type': 'text/plain' }
        : { etag: '"v2"', 'cache-control': 'max-age=60', 'content-type': 'text/plain' };
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (m !== null) {
        const [a, b] = [Number(m[1]), Number(m[2])];
        res.writeHead(206, { ...head, 'content-range': `bytes ${a}-${b}/${body.length}` }).end(body.slice(a, b + 1));
        return;
      }
      res.writeHead(200, head).end(body);
    });
    cleanups.push(() => up.close());
    const gw = await gateway(up.url);
    expect((await get(`${gw}/c`)).headers['x-cache']).toBe('MISS');
    version = 'v2';
    const part = await get(`${gw}/c`, { range: 'bytes=0-1', 'if-range': '"v1"' });
    expect([part.status, part.headers['x-cache'], part.body]).toEqual([206, 'STALE', 'v1']);
    // Until the refresh is stored a plain GET is STALE and starts no other refresh (one per key at a time).
    let plain = await get(`${gw}/c`);
    for (let i = 0; i < 100 && plain.body !== `v2:${BODY}`; i++) {
      await new Promise((r) => setImmediate(r));
      plain = await get(`${gw}/c`);
    }
    expect([plain.status, plain.headers['x-cache'], plain.body]).toEqual([200, 'HIT', `v2:${BODY}`]);
    // the miss and the one refresh, which asked for the whole resource
    expect(seen).toHaveLength(2);
    expect([seen[1]!.range, seen[1]!['if-range'], seen[1]!['if-none-match']]).toEqual([undefined, undefined, '"v1"']);
  });
});

describe('a Range request on a miss', () => {
  it('goes upstream with its Range, and the 206 it gets is not stored as the resource', async () => {
    const up = await upstream('"v1"', true);
    const gw = await gateway(up.url);
    const part = await get(`${gw}/r`, { range: 'bytes=2-4' });
    expect([part.status, part.headers['x-cache'], part.headers['content-range'], part.body]).toEqual([206, 'MISS', 'bytes 2-4/36', 'cde']);
    expect(up.seen[0]!.range).toBe('bytes=2-4');

    const plain = await get(`${gw}/r`);
    expect([plain.status, plain.headers['x-cache'], plain.body]).toEqual([200, 'MISS', BODY]);
    const hit = await get(`${gw}/r`);
    expect([hit.status, hit.headers['x-cache'], hit.body]).toEqual([200, 'HIT', BODY]);
    const fromCache = await get(`${gw}/r`, { range: 'bytes=2-4' });
    expect([fromCache.status, fromCache.headers['x-cache'], fromCache.body]).toEqual([206, 'HIT', 'cde']);
    expect(up.seen).toHaveLength(2);
  });
});
