import { of } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { BufferedBody } from '../../lib/body.ts';
import { getHeader } from '../../lib/headers.ts';
import { cache } from '../../lib/stages/cache/cache.ts';
import { baseKey } from '../../lib/stages/cache/key.ts';
import { MemoryCacheStore } from '../../lib/stages/cache/memory-store.ts';
import { supersedes } from '../../lib/stages/cache/policy.ts';
import type { GatewayResponse, Handler } from '../../lib/types.ts';
import { gatewayRequest, respond } from '../support/request.ts';
import { until } from '../support/wait.ts';

/**
 * A stale-while-revalidate refresh whose answer may not be stored (A12's
 * audit, notes/s12/A12-findings.md F1): an answer that says what the
 * resource now is (2xx, 3xx, 404, 410) deletes the stale entry; an error
 * (5xx, 429, another 4xx) leaves it for a later stale hit to try again.
 * Before, the entry stayed whatever the answer, served STALE for the whole
 * window with one more background GET per hit.
 */

const STORED = ['cache-control', 'max-age=60, stale-while-revalidate=600'];
const req = gatewayRequest({ path: '/doc', headers: { host: 'api.test' } });

/** FIRST stored, expired into its stale window, then one stale hit whose refresh gets `refresh`: is the entry still there? */
async function afterRefresh(refresh: GatewayResponse): Promise<{ kept: boolean; upstream: number }> {
  let t = 1_000_000;
  const clock = { now: () => t };
  const store = new MemoryCacheStore({ clock });
  let upstream = 0;
  const up: Handler = () => {
    upstream++;
    return of(upstream === 1 ? { status: 200, headers: STORED, body: BufferedBody.of('old') } : refresh);
  };
  const handler = cache({ clock, store, maxEntrySize: 100 })(up);
  await respond(handler, req);
  t += 61_000;
  const stale = await respond(handler, req);
  expect([getHeader(stale.response.headers, 'x-cache'), stale.body?.toString()]).toEqual(['STALE', 'old']);
  await until(() => upstream === 2);
  return { kept: store.get(baseKey(req)) !== undefined, upstream };
}

const answer = (status: number, headers: string[], body = 'new'): GatewayResponse => ({ status, headers, body: BufferedBody.of(body) });

describe('a stale-while-revalidate refresh whose answer may not be stored', () => {
  it.each([
    ['200 no-store', answer(200, ['cache-control', 'no-store'])],
    ['200 private', answer(200, ['cache-control', 'private'])],
    ['200 with Set-Cookie', answer(200, ['set-cookie', 'a=1'])],
    ['200 over maxEntrySize', answer(200, ['content-length', '200'], 'x'.repeat(200))],
    ['301 (not in statuses)', answer(301, ['location', '/elsewhere'])],
    ['404', answer(404, [])],
    ['410', answer(410, [])],
  ])('deletes the stale entry when answered %s', async (_name, res) => {
    expect(await afterRefresh(res)).toEqual({ kept: false, upstream: 2 });
  });

  it.each([
    ['503', answer(503, [])],
    ['500', answer(500, [])],
    ['429', answer(429, ['retry-after', '1'])],
    ['403', answer(403, [])],
  ])('keeps the stale entry when answered %s, for a later stale hit to try again', async (_name, res) => {
    expect(await afterRefresh(res)).toEqual({ kept: true, upstream: 2 });
  });

  it('says which statuses supersede: not an error, or gone; never a 206 or a 304 (review RA, M2)', () => {
    expect([200, 204, 206, 301, 304, 399, 400, 403, 404, 410, 429, 500, 503].map(supersedes)).toEqual([
      true, true, false, true, false, true, false, false, true, true, false, false, false,
    ]);
  });
});
