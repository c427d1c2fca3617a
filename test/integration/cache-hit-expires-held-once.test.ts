import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { header, headerValues, rawRequest, type RawResponse } from '../support/http.ts';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * A hit of an entry whose freshness came from `Expires` counts the time it
 * was held here once for a downstream cache (A12's finding, session 13).
 * uWS writes its own `Date` (the current second) on every answer and cannot
 * leave it out, so a hit said `Date: now`, the stored `Expires` and `age`:
 * a downstream cache taking `Expires` − `Date` as the lifetime (RFC 9111
 * §4.2.1) and counting `Age` against it (§4.2.3) counted the held time
 * twice. Now the hit restates `Expires` against the `Date` it goes out with,
 * so the downstream's arithmetic is the one Varnish's stored `Date` gives.
 */

const LIFETIME_S = 60;
/** Held long enough that counting it twice is more than the second's rounding of the dates. */
const HELD_MS = 3_100;

let runs: RxgateRuns;
let upstream: TestUpstream;
let gw = '';
let requests = 0;

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    requests++;
    const now = Date.now();
    const headers: Record<string, string> = { 'content-type': 'text/plain', date: new Date(now).toUTCString(), expires: new Date(now + LIFETIME_S * 1000).toUTCString() };
    if (req.url!.includes('max-age')) headers['cache-control'] = 'max-age=60';
    res.writeHead(200, headers).end('stored');
  });
  runs = rxgateRuns();
  const proc = runs.start(['--config', runs.file(`
listen: { host: 127.0.0.1, port: 0 }
services:
  up: { upstreams: ["${upstream.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /c/*, service: up, cache: { ttl: 5s } }
`)]);
  gw = `http://127.0.0.1:${Number((await proc.logged('rxgate listening'))['port'])}`;
}, 30_000);

afterAll(async () => {
  runs?.remove();
  await upstream?.close();
});

function get(path: string, extra = ''): Promise<RawResponse> {
  return rawRequest(gw, `GET ${path} HTTP/1.1\r\nhost: cache.test\r\n${extra}connection: close\r\n\r\n`);
}

/** Seconds of freshness a downstream cache gives `res` when it arrives, by RFC 9111 §4.2.1 and §4.2.3 (the response delay taken as 0). */
function downstreamLeft(res: RawResponse, receivedAt: number): { lifetime: number; age: number; left: number } {
  const date = Date.parse(header(res, 'date')!);
  const lifetime = (Date.parse(header(res, 'expires')!) - date) / 1000;
  const apparent = Math.max(0, receivedAt - date) / 1000;
  const age = Math.max(apparent, Number(header(res, 'age') ?? 0));
  return { lifetime, age, left: lifetime - age };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('a hit of an entry fresh by Expires', () => {
  it('restates Expires against the one Date it is sent with, so a downstream cache counts the time held here once (a 304 and a 206 from the entry too)', async () => {
    const before = Date.now();
    const miss = await get('/c/expires');
    const maxAge = await get('/c/max-age');
    await sleep(HELD_MS);
    const hit = await get('/c/expires');
    // Where max-age gives the lifetime (a downstream prefers it, and counts Age against it), Expires is left as it came.
    const maxAgeHit = await get('/c/max-age');
    expect([header(maxAgeHit, 'x-cache'), header(maxAgeHit, 'expires')]).toEqual(['HIT', header(maxAge, 'expires')]);
    // A 304 and a 206 answered from the entry state it the same way.
    const notModified = await get('/c/expires', `if-modified-since: ${new Date(Date.now() + 10_000).toUTCString()}\r\n`);
    const part = await get('/c/expires', 'range: bytes=0-1\r\n');
    const after = Date.now();
    expect([notModified.status, part.status]).toEqual([304, 206]);
    for (const r of [notModified, part]) {
      expect(headerValues(r, 'expires')).toHaveLength(1);
      expect(Math.abs(downstreamLeft(r, after).lifetime - LIFETIME_S)).toBeLessThanOrEqual(1);
    }
    expect([header(miss, 'x-cache'), header(hit, 'x-cache'), requests]).toEqual(['MISS', 'HIT', 2]);
    // One Date, the edge's; the held time is in age.
    expect(headerValues(hit, 'date')).toHaveLength(1);
    expect(headerValues(hit, 'expires')).toHaveLength(1);
    const age = Number(header(hit, 'age'));
    expect(age).toBeGreaterThanOrEqual(Math.floor(HELD_MS / 1000));
    const { lifetime, left } = downstreamLeft(hit, after);
    // The lifetime the downstream sees is the stored one (to the second the dates are written in),
    // not the stored one less the time held (before: 60 − 3 = 57, and 57 − age left).
    expect(Math.abs(lifetime - LIFETIME_S)).toBeLessThanOrEqual(1);
    // What is left downstream is what is left of the entry: its lifetime less the time since it was stored, once.
    const heldAtMost = (after - before) / 1000;
    expect(left).toBeGreaterThanOrEqual(LIFETIME_S - heldAtMost - 1);
    expect(left).toBeLessThanOrEqual(LIFETIME_S - HELD_MS / 1000 + 1);
  });
});
