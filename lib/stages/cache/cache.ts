import { Observable, tap, type Subscriber } from 'rxjs';
import { parseDuration, type Duration } from '../../duration.ts';
import { GatewayTimeoutError } from '../../errors.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import { stageHandler } from '../../subscriber.ts';
import type { Clock, GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';
import { waitForLeader, waitLimit } from './coalesce.ts';
import { answerConditional, hasPreconditions } from './conditional.ts';
import type { CacheContext } from './context.ts';
import { isPromiseLike, type CacheEntry, type CacheStore } from './entry.ts';
import { entryState } from './freshness.ts';
import { Inflight } from './inflight.ts';
import { getKey, KeyMemo } from './key.ts';
import { MemoryCacheStore } from './memory-store.ts';
import { goUpstream } from './miss.ts';
import { invalidates, NEVER_STORED, onlyIfCached, requestMode, type StoragePolicy } from './policy.ts';
import { replayRange } from './range.ts';
import { replay } from './replay.ts';
import { revalidate } from './revalidate.ts';
import { CacheTable, type Found } from './table.ts';

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
   * Response statuses that may be stored; 206 and 304 never are (refused here).
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
   * How long past its stale windows an entry with a validator (`ETag` or
   * `Last-Modified`) is kept, to be revalidated with a conditional request
   * (a 304 freshens it; the body is not sent again) instead of fetched
   * whole. 0: dropped as its windows close. nginx keeps entries for its
   * `inactive` time, 10 minutes by default.
   * @default '10m'
   */
  keep?: Duration;
  /**
   * Concurrent misses for one key make one upstream request.
   * @default true
   */
  coalesce?: boolean;
  /**
   * How long a coalesced miss may wait for an upstream head: the leader's,
   * or its own request's. Past it, 504. The YAML stage sets the route's
   * `timeouts.total`, which the timeout stage (after the cache) does not
   * apply to the wait. null: no bound; more than 0.
   * @default null
   */
  waitTimeout?: Duration | null;
  /**
   * Time source (wall-clock ms) for all freshness math; overrides
   * `runtime.wallNow`. Must agree across gateways sharing a store.
   * @default runtime.wallNow
   */
  clock?: Clock;
  /**
   * Where time comes from: its wall clock for freshness, unless `clock` is
   * given (`virtualRuntime(testScheduler)` in tests). The default memory
   * store gets the same clock.
   * @default systemRuntime
   */
  runtime?: Runtime;
  /** Called when the store fails (the request is then a BYPASS). @default no-op */
  onStoreError?: (err: unknown) => void;
}

/** The 504 to `only-if-cached` says it was a miss, as every answer of a cached route says what the cache did. */
const ONLY_IF_CACHED_MISS: Readonly<Record<string, string>> = Object.freeze({ 'x-cache': 'MISS' });

/** The 504 for `only-if-cached` when no stored response can answer (RFC 9111 §5.2.1.7). */
function noStoredResponse(subscriber: Subscriber<GatewayResponse>, req: GatewayRequest): void {
  req.locals.cache = 'MISS';
  subscriber.error(new GatewayTimeoutError('only-if-cached: no stored response to answer with', { sent: false, headers: ONLY_IF_CACHED_MISS }));
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
  keep: '10m',
  coalesce: true,
  waitTimeout: null,
  runtime: systemRuntime,
  onStoreError: () => {},
} satisfies Required<Omit<CacheOptions, 'clock'>>;

/**
 * A response cache (cache-aside) for GET and HEAD. See docs/readme/cache.md
 * for the rules; in short: RFC 9111 freshness from the upstream's headers
 * with a per-route TTL fallback, `Vary` support, request coalescing,
 * `stale-while-revalidate`, `stale-if-error`, and a store outage turning into
 * a bypass rather than a failure. Every response gets `x-cache`.
 *
 * This file is the shell: a lookup, then a hit (replay.ts), a stale hit
 * that revalidates in the background (revalidate.ts), an expired entry
 * revalidated with its validators (revalidation.ts), a wait on a coalesced miss
 * (coalesce.ts), or a miss that stores what it streams (miss.ts, tee.ts).
 */
export function cache(options: CacheOptions = {}): Policy {
  const o = { ...defaults, ...options };
  const runtime = o.runtime;
  const clock: Clock = o.clock ?? { now: () => runtime.wallNow() };
  const maxEntrySize = o.maxEntrySize;
  if (!Number.isInteger(maxEntrySize) || maxEntrySize < 0) {
    throw new TypeError(`maxEntrySize: expected a non-negative integer of bytes, got ${maxEntrySize}`);
  }
  for (const s of o.statuses) {
    if (!Number.isInteger(s) || s < 100 || s > 599) throw new TypeError(`statuses: ${s} is not an HTTP status`);
    if (NEVER_STORED.has(s)) throw new TypeError(`statuses: ${s} is never stored (a 206 is a part of a response, a 304 only updates a stored one)`);
  }
  const policy: StoragePolicy = {
    statuses: new Set(o.statuses),
    ttl: parseDuration(o.ttl, 'ttl'),
    maxTtl: o.maxTtl === null ? null : parseDuration(o.maxTtl, 'maxTtl'),
    staleWhileRevalidate: parseDuration(o.staleWhileRevalidate, 'staleWhileRevalidate'),
    staleIfError: parseDuration(o.staleIfError, 'staleIfError'),
  };
  const store: CacheStore = o.store ?? new MemoryCacheStore({ clock });
  const { onStoreError, coalesce, cacheAuthorized } = o;
  const limit = waitLimit(o.waitTimeout, runtime);
  const table = new CacheTable(store, onStoreError, parseDuration(o.keep, 'keep'));

  return (next: Handler): Handler => {
    const ctx: CacheContext = {
      next, policy, maxEntrySize, clock, table, storeCopies: store.copiesBodies === true,
      inflight: new Inflight(), revalidating: new Set(),
    };
    const keys = new KeyMemo();

    /** The request's fate once the lookup has answered. */
    function decide(subscriber: Subscriber<GatewayResponse>, req: GatewayRequest, base: string, found: Found): void {
      const { entry, key } = found;
      let stale: CacheEntry | undefined;
      if (entry !== undefined) {
        // One clock read per hit: the freshness check and Age use the same instant.
        const now = clock.now();
        const state = entryState(entry, now);
        if (state === 'fresh' || state === 'stale') {
          if (state === 'stale') revalidate(ctx, req, base, key, entry);
          // A fresh hit answers If-None-Match/If-Modified-Since (304) and If-Match/If-Unmodified-Since (412) itself.
          else if (hasPreconditions(req.headers) && answerConditional(subscriber, req, entry, now)) return;
          const status = state === 'fresh' ? 'HIT' : 'STALE';
          req.locals.cache = status;
          const range = req.headers.range; // a byte range of the stored 200 (range.ts)
          subscriber.next(range === undefined ? replay(entry, req.method, status, now) : replayRange(entry, req, range, status, now));
          subscriber.complete();
          return;
        }
        if (state === 'stale-if-error') stale = entry;
      }
      if (onlyIfCached(req)) {
        noStoredResponse(subscriber, req);
        return;
      }
      // A HEAD miss goes upstream as a HEAD; there is no body to store. A GET
      // revalidates the entry still held (inside stale-if-error, or kept past its windows for this, `keep`).
      if (req.method === 'HEAD') goUpstream(ctx, subscriber, req, base, 'MISS', false, stale);
      else if (!coalesce) goUpstream(ctx, subscriber, req, base, 'MISS', true, stale, undefined, key, entry);
      else if (ctx.inflight.has(key)) waitForLeader(ctx, subscriber, req, base, key, limit);
      // A GET with Range does not lead: its 206 is never stored, so no plain GET may wait on it (docs/cache.md).
      else if (req.headers.range !== undefined) goUpstream(ctx, subscriber, req, base, 'MISS', true, stale, undefined, key, entry);
      else goUpstream(ctx, subscriber, req, base, 'MISS', true, stale, ctx.inflight.lead(key), key, entry);
    }

    /** A failed lookup: report it, and go upstream as a bypass. */
    function lookupFailed(subscriber: Subscriber<GatewayResponse>, req: GatewayRequest, err: unknown): void {
      onStoreError(err);
      if (!subscriber.closed) goUpstream(ctx, subscriber, req, '', 'BYPASS', false);
    }

    // Every path below hangs its work on `subscriber` (a child subscriber,
    // or a finalizer), so unsubscribing it stops whatever is under way.
    function lookup(_next: Handler, req: GatewayRequest, subscriber: Subscriber<GatewayResponse>): void {
      const mode = requestMode(req, cacheAuthorized);
      if (mode === 'bypass') {
        // RFC 9111 §4.4: an unsafe method's non-error answer invalidates what is stored for its URL.
        if (!invalidates(req)) goUpstream(ctx, subscriber, req, '', 'BYPASS', false);
        else new Observable<GatewayResponse>((s) => goUpstream(ctx, s, req, '', 'BYPASS', false)).pipe(tap((res) => {
          if (res.status < 400) table.invalidate(getKey(req), req, clock.now());
        })).subscribe(subscriber);
        return;
      }
      if (mode === 'unavailable') return noStoredResponse(subscriber, req);
      const base = keys.baseKey(req);
      if (mode === 'refresh') return goUpstream(ctx, subscriber, req, base, 'BYPASS', req.method === 'GET');
      let found: Found | PromiseLike<Found>;
      try {
        found = table.lookup(req, base);
      } catch (err) {
        return lookupFailed(subscriber, req, err);
      }
      if (!isPromiseLike(found)) return decide(subscriber, req, base, found);
      found.then(
        (f) => {
          if (!subscriber.closed) decide(subscriber, req, base, f);
        },
        (err: unknown) => lookupFailed(subscriber, req, err),
      );
    }

    // A StageCall per request, none when the stage before starts this one
    // directly (stageHandler): no Observable and closure per request.
    return stageHandler('cacheHandler', lookup, next);
  };
}
