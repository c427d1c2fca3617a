import { from, Observable, switchMap, type Subscriber } from 'rxjs';
import { parseDuration, type Duration } from '../../duration.ts';
import { RateLimitedError } from '../../errors.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import { InnerSubscriber, stageHandler, subscribeNext } from '../../subscriber.ts';
import { headersWithRoom } from '../response-headers.ts';
import { gcraRule, type RateLimitResult } from './gcra.ts';
import { compileKey, type RateLimitKey } from './key.ts';
import { isThenable, type RateLimitStore } from './store.ts';
import { MemoryRateLimitStore } from './memory-store.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../../types.ts';

declare module '../../types.ts' {
  interface RequestLocals {
    /** The last rate-limit decision for this request. */
    rateLimit?: RateLimitResult;
  }
}

export interface RateLimitOptions {
  /**
   * Requests per `window` (the sustained rate; `ratelimit-limit`).
   * @default 60
   */
  limit?: number;
  /**
   * The window `limit` is counted over.
   * @default '1m'
   */
  window?: Duration;
  /**
   * Requests admitted back to back after a quiet spell. `1` makes the limit
   * strict: never more than `limit` in any window.
   * @default limit
   */
  burst?: number;
  /**
   * What requests are counted against.
   * @default 'ip'
   */
  key?: RateLimitKey;
  /**
   * Namespace of this limit's buckets in the store. Two stages with the same
   * id and store share budgets; give each route its own (the config layer
   * uses the route name).
   * @default 'default'
   */
  id?: string;
  /**
   * Where state lives.
   * @default a new MemoryRateLimitStore on `runtime` (per stage, per process)
   */
  store?: RateLimitStore;
  /**
   * Clocks for the default store (`virtualRuntime(testScheduler)` in tests).
   * A store passed in keeps its own.
   * @default systemRuntime
   */
  runtime?: Runtime;
  /**
   * Add `ratelimit-limit`/`-remaining`/`-reset` to admitted responses.
   * (Refused ones always carry them.)
   * @default true
   */
  headers?: boolean;
}

const defaults = {
  limit: 60,
  window: '1m',
  key: 'ip',
  id: 'default',
  headers: true,
  runtime: systemRuntime,
} satisfies Required<Omit<RateLimitOptions, 'burst' | 'store'>>;

/**
 * Adds our headers (IETF draft-ietf-httpapi-ratelimit-headers names; reset in
 * whole seconds) to the response. When an inner stage (a second limit on the
 * same route) already set them, the tighter of the two is kept.
 */
function withRateLimitHeaders(res: GatewayResponse, r: RateLimitResult, values: HeaderValues): GatewayResponse {
  const h = res.headers;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === 'ratelimit-remaining') {
      if (Number(h[i + 1]) <= r.remaining) return res;
      const kept = h.filter((_, j) => j % 2 === 0 ? !h[j]!.startsWith('ratelimit-') : !h[j - 1]!.startsWith('ratelimit-'));
      return { ...res, headers: appendHeaders(kept, values.of(r)) };
    }
  }
  return { ...res, headers: appendHeaders(h, values.of(r)) };
}

/** A copy of `h` with our three headers at the end. */
function appendHeaders(h: string[], values: HeaderValues): string[] {
  const n = h.length;
  const out = headersWithRoom(h, 6);
  out[n] = 'ratelimit-limit';
  out[n + 1] = values.limit;
  out[n + 2] = 'ratelimit-remaining';
  out[n + 3] = values.remaining;
  out[n + 4] = 'ratelimit-reset';
  out[n + 5] = values.reset;
  return out;
}

/**
 * A stage's header values for its last result, made again only for another
 * result: the memory store hands a client within its rate the same result
 * request after request, and so the same strings.
 */
class HeaderValues {
  private result: RateLimitResult | null = null;
  remaining = '';
  reset = '';

  constructor(readonly limit: string) {}

  of(r: RateLimitResult): this {
    if (r !== this.result) {
      this.result = r;
      this.remaining = String(r.remaining);
      this.reset = String(Math.ceil(r.resetMs / 1000));
    }
    return this;
  }
}

/**
 * Passes the response head on with our headers. A subscriber of our own
 * rather than `pipe(map(...))`: this runs once per admitted request, and
 * `map` costs a lifted Observable, an operator closure and a subscriber full
 * of closures each time. Like `map`, a throw goes downstream as the error.
 */
class HeadersSubscriber extends InnerSubscriber<GatewayResponse> {
  constructor(downstream: Subscriber<GatewayResponse>, private readonly result: RateLimitResult, private readonly values: HeaderValues) {
    super(downstream);
  }

  protected onNext(res: GatewayResponse): void {
    let out: GatewayResponse;
    try {
      out = withRateLimitHeaders(res, this.result, this.values);
    } catch (err) {
      this.error(err);
      return;
    }
    this.downstream.next(out);
  }
}

function refused(r: RateLimitResult): RateLimitedError {
  return new RateLimitedError('rate limit exceeded', {
    headers: {
      'retry-after': String(Math.max(1, Math.ceil(r.retryAfterMs / 1000))),
      'ratelimit-limit': String(r.limit),
      'ratelimit-remaining': '0',
      'ratelimit-reset': String(Math.ceil(r.resetMs / 1000)),
    },
  });
}

/**
 * Limits requests per key with GCRA (smooth, one number of state per key).
 * Over the limit: `RateLimitedError` (429) with `retry-after`. With an
 * in-memory store the check is synchronous; only a store that answers with a
 * Promise (Redis) makes the stage asynchronous.
 */
export function rateLimit(options: RateLimitOptions = {}): Policy {
  const limit = options.limit ?? defaults.limit;
  const windowMs = parseDuration(options.window ?? defaults.window, 'rateLimit.window');
  const rule = gcraRule(limit, windowMs, options.burst ?? limit);
  const keyOf = compileKey(options.key ?? defaults.key);
  const prefix = `${options.id ?? defaults.id}:`;
  const store = options.store ?? new MemoryRateLimitStore({ runtime: options.runtime ?? defaults.runtime });
  const withHeaders = options.headers ?? defaults.headers;
  const headerValues = new HeaderValues(String(rule.limit));
  // The last key and its prefixed form, reused while the key repeats: the
  // same string object each time keeps its hash, so the store's Map lookup
  // need not flatten and hash a new concatenation per request.
  let lastKey: string | undefined;
  let lastStoreKey = '';
  function storeKey(key: string): string {
    if (key !== lastKey) {
      lastKey = key;
      lastStoreKey = prefix + key;
    }
    return lastStoreKey;
  }

  function decide(next: Handler, req: GatewayRequest, r: RateLimitResult, subscriber: Subscriber<GatewayResponse>): void {
    req.locals.rateLimit = r;
    if (!r.allowed) subscriber.error(refused(r));
    else if (!withHeaders) subscribeNext(next, req, subscriber);
    else subscribeNext(next, req, new HeadersSubscriber(subscriber, r, headerValues));
  }

  /** The check, run when a request's Observable is subscribed. */
  function check(next: Handler, req: GatewayRequest, subscriber: Subscriber<GatewayResponse>): void {
    const r = store.consume(storeKey(keyOf(req)), rule);
    if (!isThenable(r)) {
      decide(next, req, r, subscriber);
      return;
    }
    from(r).pipe(switchMap((result) => new Observable<GatewayResponse>((s) => decide(next, req, result, s)))).subscribe(subscriber);
  }

  // Not `defer`: with a synchronous store (memory) the decision and the
  // subscription to the next stage happen right here, with no inner
  // Observable to build; only a Promise (Redis) goes through `from`. A
  // StageCall: one object per request, none when the stage before starts
  // this one directly (stageHandler).
  return (next: Handler) => stageHandler('rateLimitHandler', check, next);
}
