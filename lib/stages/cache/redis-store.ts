import type { Cluster, Redis } from 'ioredis';
import type { Subscription } from 'rxjs';
import { decodeRecord, encodeRecord } from './codec.ts';
import type { CacheRecord, CacheStore } from './entry.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { after, systemRuntime, type Runtime } from '../../runtime.ts';

export interface RedisCacheStoreOptions {
  /**
   * Prefix of every key this store writes.
   * @default 'rxgate:cache:'
   */
  keyPrefix?: string;
  /**
   * Longest wait for one Redis command before the store gives up and the
   * request bypasses the cache. A safety net on top of the client's own
   * `commandTimeout`; 0 turns it off.
   * @default '250ms'
   */
  timeout?: Duration;
  /** Called for every failed or timed-out command (the cache keeps serving, as a bypass). */
  onError?: (err: unknown) => void;
  /**
   * Where the `timeout` timer runs (entries expire by Redis's own clock).
   * @default systemRuntime
   */
  runtime?: Runtime;
}

const defaults = {
  keyPrefix: 'rxgate:cache:',
  timeout: '250ms',
  onError: () => {},
  runtime: systemRuntime,
} satisfies Required<RedisCacheStoreOptions>;

/** Raised when a command outlives `timeout`. */
export class CacheStoreTimeoutError extends Error {
  override readonly name = 'CacheStoreTimeoutError';
}

/**
 * A cache store in Redis, shared by every gateway using the same server.
 * Each record is one key holding head and body together (see codec.ts),
 * expiring by `PX` after its freshness plus stale windows. Build the client
 * with `enableOfflineQueue: false` and a short `commandTimeout` so an outage
 * fails fast: a failing `get` makes the request a cache BYPASS, a failing
 * `set` is dropped; both are counted in `errors`.
 */
export class RedisCacheStore implements CacheStore {
  /** `encodeRecord` copies the body into the value sent. */
  readonly copiesBodies = true;
  private readonly prefix: string;
  private readonly timeout: number;
  private readonly onError: (err: unknown) => void;
  private readonly runtime: Runtime;
  /** Commands that failed or timed out since the store was built. */
  errors = 0;

  constructor(private readonly client: Redis | Cluster, options: RedisCacheStoreOptions = {}) {
    const { keyPrefix = defaults.keyPrefix, timeout = defaults.timeout, onError = defaults.onError, runtime = defaults.runtime } = options;
    this.runtime = runtime;
    this.prefix = keyPrefix;
    this.timeout = parseDuration(timeout, 'timeout');
    this.onError = onError;
  }

  get(key: string): Promise<CacheRecord | undefined> {
    return this.guard(this.client.getBuffer(this.prefix + key)).then((buf) =>
      buf === null ? undefined : decodeRecord(buf),
    );
  }

  set(key: string, record: CacheRecord, ttl: number): Promise<void> {
    const px = Math.max(1, Math.ceil(ttl));
    return this.guard(this.client.set(this.prefix + key, encodeRecord(record), 'PX', px)).then(() => undefined);
  }

  delete(key: string): Promise<void> {
    return this.guard(this.client.del(this.prefix + key)).then(() => undefined);
  }

  private guard<T>(command: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      let timer: Subscription | undefined;
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        timer?.unsubscribe();
        this.errors++;
        this.onError(err);
        reject(err);
      };
      if (this.timeout > 0) {
        // An I/O adapter's own deadline, not operator logic: a client left with
        // an offline queue would otherwise hold requests until Redis returns.
        timer = after(this.runtime, this.timeout, () => fail(new CacheStoreTimeoutError(`redis command timed out after ${this.timeout}ms`)));
      }
      command.then((v) => {
        if (settled) return;
        settled = true;
        timer?.unsubscribe();
        resolve(v);
      }, fail);
    });
  }
}
