import { defer, from, map, switchMap, throwError, type Observable } from 'rxjs';
import { parseDuration, type Duration } from '../duration.ts';
import { RateLimitedError } from '../errors.ts';
import { gcraRule, type RateLimitResult } from '../ratelimit/gcra.ts';
import { compileKey, type RateLimitKey } from '../ratelimit/key.ts';
import { isThenable, type RateLimitStore } from '../ratelimit/store.ts';
import { MemoryRateLimitStore } from '../stores/rate-limit-memory.ts';
import type { GatewayRequest, GatewayResponse, Handler, Policy } from '../types.ts';

declare module '../types.ts' {
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
   * @default a new MemoryRateLimitStore (per stage, per process)
   */
  store?: RateLimitStore;
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
} satisfies Required<Omit<RateLimitOptions, 'burst' | 'store'>>;

/** IETF draft-ietf-httpapi-ratelimit-headers names; reset in whole seconds. */
function headerList(r: RateLimitResult): string[] {
  return [
    'ratelimit-limit', String(r.limit),
    'ratelimit-remaining', String(r.remaining),
    'ratelimit-reset', String(Math.ceil(r.resetMs / 1000)),
  ];
}

/**
 * Adds our headers to the response. When an inner stage (a second limit on
 * the same route) already set them, the tighter of the two is kept.
 */
function withRateLimitHeaders(res: GatewayResponse, r: RateLimitResult): GatewayResponse {
  const h = res.headers;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i] === 'ratelimit-remaining') {
      if (Number(h[i + 1]) <= r.remaining) return res;
      const kept = h.filter((_, j) => j % 2 === 0 ? !h[j]!.startsWith('ratelimit-') : !h[j - 1]!.startsWith('ratelimit-'));
      return { ...res, headers: kept.concat(headerList(r)) };
    }
  }
  return { ...res, headers: h.concat(headerList(r)) };
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
  const store = options.store ?? new MemoryRateLimitStore();
  const withHeaders = options.headers ?? defaults.headers;

  return (next: Handler) => {
    function decide(req: GatewayRequest, r: RateLimitResult): Observable<GatewayResponse> {
      req.locals.rateLimit = r;
      if (!r.allowed) return throwError(() => refused(r));
      if (!withHeaders) return next(req);
      return next(req).pipe(map((res) => withRateLimitHeaders(res, r)));
    }

    return function rateLimitHandler(req) {
      return defer(() => {
        const result = store.consume(prefix + keyOf(req), rule);
        return isThenable(result)
          ? from(result).pipe(switchMap((r) => decide(req, r)))
          : decide(req, result);
      });
    };
  };
}
