/**
 * In process, the cache operator alone on a memory store: an expired entry
 * answered by a revalidation (the fake upstream's 304) vs by a refetch (its
 * 200 with the body, stored again; keep: 0), a new expiry per request, ns
 * per request (min of 60 interleaved batches of 2,000). The fake upstream
 * costs nothing: see docs/cache.md (Revalidation) for what this leaves out.
 *
 *   node --import ./bin/loader/register.mjs bench/cache-revalidate.ts
 */
import { Observable } from 'rxjs';
import { BufferedBody } from '../lib/body.ts';
import { cache } from '../lib/stages/cache/cache.ts';
import type { GatewayRequest, GatewayResponse, Handler } from '../lib/types.ts';
const sizes = [1068, 64 * 1024];
const N = 2000;
const sink = { next(r: GatewayResponse) { r.body?.pipe({ write: () => true, end: () => {} }); }, error(e: unknown) { throw e; }, complete() {} };
function build(size: number, reval: boolean): [Handler, { advance(): void }] {
  let t = 1_000_000;
  const clock = { now: () => t, advance: () => { t += 61_000; } };
  const payload = Buffer.alloc(size, 0x20);
  let first = true;
  const up = ((req: GatewayRequest) => new Observable<GatewayResponse>((s) => {
    if (reval && !first && req.headers['if-none-match'] === '"e1"') s.next({ status: 304, headers: ['etag', '"e1"', 'cache-control', 'max-age=60'], body: null });
    else s.next({ status: 200, headers: ['content-type', 'application/json', 'etag', '"e1"', 'cache-control', 'max-age=60'], body: new BufferedBody([payload]) });
    first = false;
    s.complete();
  })) as Handler;
  return [cache({ clock, maxEntrySize: 1 << 20, keep: reval ? '10m' : 0 })(up), clock];
}
const req = (): GatewayRequest => ({
  id: 'r1', method: 'GET', path: '/item', query: '', normalizedPath: '/item', headers: { host: 'a' },
  remoteAddress: '127.0.0.1', protocol: 'http', body: null, params: {}, receivedAt: 0, locals: {},
  attempt: { number: 1, tried: [], instance: null },
});
const cases = sizes.flatMap((s) => [[`${s} B, revalidated (304)`, ...build(s, true)], [`${s} B, refetched (200)`, ...build(s, false)]] as const);
const best = cases.map(() => Infinity);
for (const [, h] of cases) h(req()).subscribe(sink);
for (let b = 0; b < 60; b++) cases.forEach(([, h, clock], i) => {
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < N; k++) { clock.advance(); h(req()).subscribe(sink); }
  best[i] = Math.min(best[i]!, Number(process.hrtime.bigint() - t0) / N);
});
cases.forEach(([name], i) => console.log(`${name}: ${best[i]!.toFixed(0)} ns/request`));
