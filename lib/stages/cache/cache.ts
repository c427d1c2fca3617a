import { Observable, Subscription, type Observer, type Subscriber } from 'rxjs';
import { collectBody, tapBody, BufferedBody } from '../../body.ts';
import type { CacheEntry, CacheStore } from './entry.ts';
import { isPromiseLike } from './entry.ts';
import { entryState } from './freshness.ts';
import { Inflight } from './inflight.ts';
import { baseKey, variantKey } from './key.ts';
import { planStorage, requestMode, type StoragePlan, type StoragePolicy } from './policy.ts';
import { backgroundRequest, entryOf, replay, tagged, type CacheStatus } from './replay.ts';
import { CacheTable, type Found } from './table.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { toGatewayError } from '../../errors.ts';
import { MemoryCacheStore } from './memory-store.ts';
import type { Body, Clock, GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';

export type { CacheStatus } from './replay.ts';

export interface CacheOptions {
  /**
   * Where entries live: `MemoryCacheStore` (per process) or `RedisCacheStore`
   * (shared). Null builds a fresh 64 MiB memory store on the same clock.
   * @default null
   */
  store?: CacheStore | null;
  /**
   * Lifetime when the upstream gives none (no `s-maxage`, `max-age` or `Expires`).
   * @default '60s'
   */
  ttl?: Duration;
  /**
   * Cap on any lifetime, the upstream's included; null for none.
   * @default null
   */
  maxTtl?: Duration | null;
  /**
   * Largest body stored, in bytes. Larger responses stream through uncached.
   * @default 1048576 (1 MiB)
   */
  maxEntrySize?: number;
  /**
   * Response statuses that may be stored.
   * @default [200]
   */
  statuses?: readonly number[];
  /**
   * Cache requests that carry `Authorization`. Entries are then shared by
   * every caller unless the upstream sends `Vary: authorization`.
   * @default false
   */
  cacheAuthorized?: boolean;
  /**
   * `stale-while-revalidate` window when the upstream sends none.
   * @default 0
   */
  staleWhileRevalidate?: Duration;
  /**
   * `stale-if-error` window when the upstream sends none.
   * @default 0
   */
  staleIfError?: Duration;
  /**
   * Concurrent misses for one key make one upstream request.
   * @default true
   */
  coalesce?: boolean;
  /**
   * Time source for all freshness math. Must agree across gateways sharing a store.
   * @default Date.now
   */
  clock?: Clock;
  /** Called when the store fails (the request is then a BYPASS). @default no-op */
  onStoreError?: (err: unknown) => void;
}

const defaults = {
  store: null,
  ttl: '60s',
  maxTtl: null,
  maxEntrySize: 1024 * 1024, // 1 MiB
  statuses: [200],
  cacheAuthorized: false,
  staleWhileRevalidate: 0,
  staleIfError: 0,
  coalesce: true,
  clock: { now: () => Date.now() },
  onStoreError: () => {},
} satisfies Required<CacheOptions>;

/** What a coalescing leader hands its waiters: the entry it stored, or the stale one it fell back to. */
interface Settled {
  entry: CacheEntry;
  key: string;
  status: 'HIT' | 'STALE';
}

function forwardTo(subscriber: Subscriber<GatewayResponse>): Partial<Observer<GatewayResponse>> {
  return {
    next: (v) => subscriber.next(v),
    error: (e: unknown) => subscriber.error(e),
    complete: () => subscriber.complete(),
  };
}

/**
 * A response cache (cache-aside) for GET and HEAD. See docs/readme/cache.md
 * for the rules; in short: RFC 9111 freshness from the upstream's headers
 * with a per-route TTL fallback, `Vary` support, request coalescing,
 * `stale-while-revalidate`, `stale-if-error`, and a store outage turning into
 * a bypass rather than a failure. Every response gets `x-cache`.
 */
export function cache(options: CacheOptions = {}): Policy {
  const o = { ...defaults, ...options };
  const clock = o.clock;
  const maxEntrySize = o.maxEntrySize;
  if (!Number.isInteger(maxEntrySize) || maxEntrySize < 0) {
    throw new TypeError(`maxEntrySize: expected a non-negative integer of bytes, got ${maxEntrySize}`);
  }
  for (const s of o.statuses) {
    if (!Number.isInteger(s) || s < 100 || s > 599) throw new TypeError(`statuses: ${s} is not an HTTP status`);
  }
  const policy: StoragePolicy = {
    statuses: new Set(o.statuses),
    ttl: parseDuration(o.ttl, 'ttl'),
    maxTtl: o.maxTtl === null ? null : parseDuration(o.maxTtl, 'maxTtl'),
    staleWhileRevalidate: parseDuration(o.staleWhileRevalidate, 'staleWhileRevalidate'),
    staleIfError: parseDuration(o.staleIfError, 'staleIfError'),
  };
  const store: CacheStore = o.store ?? new MemoryCacheStore({ clock });
  const onStoreError = o.onStoreError;
  const table = new CacheTable(store, onStoreError);
  const write = (base: string, req: GatewayRequest, entry: CacheEntry): string => table.write(base, req, entry, clock.now());

  return (next: Handler): Handler => {
    const inflight = new Inflight<Settled>();
    const revalidating = new Set<string>();

    /**
     * Goes upstream. With `storeIt`, a storable response is copied while it
     * streams to the client and stored when it ends (too large: the copy is
     * dropped). With `stale`, an upstream failure answers with that entry.
     * `settle` tells coalesced waiters (who looked up `lookupKey`) what came of it.
     */
    function upstream(
      req: GatewayRequest,
      base: string,
      status: CacheStatus,
      storeIt: boolean,
      stale?: CacheEntry,
      settle?: (v: Settled | null) => void,
      lookupKey = base,
    ): Observable<GatewayResponse> {
      return new Observable<GatewayResponse>((subscriber) => {
        let settled = false;
        const done = (v: Settled | null): void => {
          if (settled) return;
          settled = true;
          settle?.(v);
        };
        let completed = false;
        const serveStale = (entry: CacheEntry): void => {
          // waiters share the fallback: during an outage they would fail the same way
          done({ entry, key: lookupKey, status: 'STALE' });
          completed = true;
          subscriber.next(replay(entry, req.method, 'STALE', clock.now()));
          subscriber.complete();
        };
        const sub = next(req).subscribe({
          next(res) {
            if (stale !== undefined && res.status >= 500) {
              res.body?.destroy();
              serveStale(stale);
              return;
            }
            const plan = storeIt ? planStorage(res, clock.now(), policy) : null;
            const body = res.body;
            if (plan === null || (body !== null && body.length !== null && body.length > maxEntrySize)) {
              done(null);
              subscriber.next(tagged(res, status));
              return;
            }
            if (body === null) {
              const entry = entryOf(res, plan, null);
              done({ entry, key: write(base, req, entry), status: 'HIT' });
              subscriber.next(tagged(res, status));
              return;
            }
            subscriber.next({ ...res, headers: [...res.headers, 'x-cache', status], body: copying(body, res, plan) });
          },
          error(err: unknown) {
            if (stale !== undefined && toGatewayError(err).status >= 500) {
              serveStale(stale);
              return;
            }
            done(null);
            subscriber.error(err);
          },
          complete() {
            completed = true;
            subscriber.complete();
          },
        });
        return () => {
          sub.unsubscribe();
          // A handler completes once its body has ended; unsubscribed earlier,
          // the body never will, so waiters must not wait for it.
          if (!completed) done(null);
        };

        function copying(body: Body, res: GatewayResponse, plan: StoragePlan): Body {
          let chunks: Uint8Array[] | null = [];
          let size = 0;
          const tapped = tapBody(
            body,
            (chunk) => {
              if (chunks === null) return;
              size += chunk.byteLength;
              if (size > maxEntrySize) {
                chunks = null; // too large: drop the copy, keep streaming
                done(null);
                return;
              }
              chunks.push(chunk);
            },
            () => {
              if (chunks === null) return;
              // Always a copy of exactly `size` bytes: a chunk from undici is a view
              // into its socket read buffer, and keeping the view would keep the
              // whole buffer alive (the LRU counts only the view's bytes).
              const data = new BufferedBody([compact(chunks, size)]);
              chunks = null;
              const entry = entryOf(res, plan, data);
              done({ entry, key: write(base, req, entry), status: 'HIT' });
            },
          );
          return {
            length: tapped.length,
            pipe: (sink) => tapped.pipe(sink),
            resume: () => tapped.resume(),
            destroy: () => {
              chunks = null;
              done(null);
              tapped.destroy();
            },
          };
        }
      });
    }

    /** Waits for the leader of `key`; serves its entry if it is this request's variant, else goes upstream itself. */
    function wait(req: GatewayRequest, base: string, key: string): Observable<GatewayResponse> {
      return new Observable<GatewayResponse>((subscriber) => {
        let inner: Subscription | undefined;
        const leave = inflight.join(key, (v) => {
          if (v !== null && v.key === variantKey(base, req.headers, v.entry.vary)) {
            subscriber.next(replay(v.entry, req.method, v.status, clock.now()));
            subscriber.complete();
            return;
          }
          inner = upstream(req, base, 'MISS', true).subscribe(forwardTo(subscriber));
        });
        return () => {
          leave();
          inner?.unsubscribe();
        };
      });
    }

    /** One background GET to refresh `key`, not tied to any client. */
    function revalidate(req: GatewayRequest, base: string, key: string): void {
      if (revalidating.has(key)) return;
      revalidating.add(key);
      const finish = (): void => {
        revalidating.delete(key);
      };
      const bg = backgroundRequest(req);
      // a container, so a response arriving synchronously can still end the subscription
      const sub = new Subscription();
      let responded = false;
      sub.add(next(bg).subscribe({
        next(res) {
          responded = true;
          const plan = planStorage(res, clock.now(), policy);
          const body = res.body;
          if (plan === null || (body !== null && body.length !== null && body.length > maxEntrySize)) {
            body?.destroy();
            sub.unsubscribe();
            finish();
            return;
          }
          if (body === null) {
            write(base, bg, entryOf(res, plan, null));
            finish();
            return;
          }
          collectBody(body, maxEntrySize).then(
            (buf) => {
              write(base, bg, entryOf(res, plan, new BufferedBody([buf])));
              finish();
            },
            () => {
              sub.unsubscribe(); // too large: collectBody destroyed the body; abort the exchange
              finish();
            },
          );
        },
        error: finish,
        complete: () => {
          if (!responded) finish();
        },
      }));
    }

    /** The request's fate once the lookup has answered. */
    function decide(req: GatewayRequest, base: string, found: Found, subscriber: Subscriber<GatewayResponse>): Observable<GatewayResponse> | null {
      const { entry, key } = found;
      let stale: CacheEntry | undefined;
      if (entry !== undefined) {
        const state = entryState(entry, clock.now());
        if (state === 'fresh' || state === 'stale') {
          if (state === 'stale') revalidate(req, base, key);
          subscriber.next(replay(entry, req.method, state === 'fresh' ? 'HIT' : 'STALE', clock.now()));
          subscriber.complete();
          return null;
        }
        if (state === 'stale-if-error') stale = entry;
      }
      // A HEAD miss goes upstream as a HEAD; there is no body to store.
      if (req.method === 'HEAD') return upstream(req, base, 'MISS', false, stale);
      if (!o.coalesce) return upstream(req, base, 'MISS', true, stale);
      if (inflight.has(key)) return wait(req, base, key);
      return upstream(req, base, 'MISS', true, stale, inflight.lead(key), key);
    }

    const bypass = (req: GatewayRequest): Observable<GatewayResponse> =>
      new Observable<GatewayResponse>((subscriber) => {
        const sub = next(req).subscribe({
          next: (res) => subscriber.next(tagged(res, 'BYPASS')),
          error: (e: unknown) => subscriber.error(e),
          complete: () => subscriber.complete(),
        });
        return () => sub.unsubscribe();
      });

    return function cacheHandler(req: GatewayRequest): Observable<GatewayResponse> {
      const mode = requestMode(req, o.cacheAuthorized);
      if (mode === 'bypass') return bypass(req);
      const base = baseKey(req);
      if (mode === 'refresh') return upstream(req, base, 'BYPASS', req.method === 'GET');
      return new Observable<GatewayResponse>((subscriber) => {
        let inner: Subscription | undefined;
        let closed = false;
        const onFound = (found: Found): void => {
          if (closed) return;
          const $ = decide(req, base, found, subscriber);
          if ($ !== null) inner = $.subscribe(forwardTo(subscriber));
        };
        const onFailed = (err: unknown): void => {
          onStoreError(err);
          if (!closed) inner = bypass(req).subscribe(forwardTo(subscriber));
        };
        let found: Found | PromiseLike<Found>;
        try {
          found = table.lookup(req, base);
        } catch (err) {
          onFailed(err);
          return () => inner?.unsubscribe();
        }
        if (isPromiseLike(found)) found.then(onFound, onFailed);
        else onFound(found);
        return () => {
          closed = true;
          inner?.unsubscribe();
        };
      });
    };
  };
}

/** The chunks copied into one buffer of exactly `size` bytes (small ones share Node's 8 KiB pool slabs, which LRU order frees roughly in turn). */
function compact(chunks: readonly Uint8Array[], size: number): Buffer {
  const out = Buffer.allocUnsafe(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
