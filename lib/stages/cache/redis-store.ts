import type { Cluster, Redis } from 'ioredis';
import type { Subscription } from 'rxjs';
import { decodeRecord, encodeRecord } from './codec.ts';
import type { CacheRecord, CacheStore, VaryRecord } from './entry.ts';
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

/** Compare-and-set rounds of a vary record before the write is given up (each one means an invalidation landed meanwhile). */
const VARY_TRIES = 3;

/**
 * SET KEYS[1] ARGV[1] PX ARGV[2], unless KEYS[1] holds a vary record (codec.ts:
 * version 1, 4-byte length, JSON head) whose since (s) or until (u) is later
 * than ARGV[3] / ARGV[4]: then 0, nothing written.
 */
const SET_VARY = `
local old = redis.call('GET', KEYS[1])
if old and #old >= 5 and string.byte(old, 1) == 1 then
  local len = struct.unpack('>I4', string.sub(old, 2, 5))
  local ok, h = pcall(cjson.decode, string.sub(old, 6, 5 + len))
  if ok and type(h) == 'table' and h.k == 'v' then
    if (type(h.s) == 'number' and h.s > tonumber(ARGV[3])) or (type(h.u) == 'number' and h.u > tonumber(ARGV[4])) then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/**
 * Lua that returns 0 unless KEYS[1] holds an entry (codec.ts: version 1,
 * 4-byte length, JSON head with k 'e') stored at ARGV[n] (its a).
 */
const holds = (n: number): string => `
local old = redis.call('GET', KEYS[1])
if not old or #old < 5 or string.byte(old, 1) ~= 1 then return 0 end
local len = struct.unpack('>I4', string.sub(old, 2, 5))
local ok, h = pcall(cjson.decode, string.sub(old, 6, 5 + len))
if not ok or type(h) ~= 'table' or h.k ~= 'e' or h.a ~= tonumber(ARGV[${n}]) then return 0 end
`;

/** SET KEYS[1] ARGV[1] PX ARGV[2] only while KEYS[1] holds the entry stored at ARGV[3]; 1 when written, else 0. */
const REPLACE = `${holds(3)}redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

/** DEL KEYS[1] only while it holds the entry stored at ARGV[1]; 1 when deleted, else 0. */
const DELETE_IF = `${holds(1)}redis.call('DEL', KEYS[1])
return 1
`;

function max(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.max(a, b);
}

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
    if (record.kind === 'vary') return this.setVary(key, record, ttl, VARY_TRIES);
    const px = Math.max(1, Math.ceil(ttl));
    return this.guard(this.client.set(this.prefix + key, encodeRecord(record), 'PX', px)).then(() => undefined);
  }

  /**
   * Writes a vary record unless the one stored has a later invalidation
   * mark or `until` (the script compares and sets atomically); then reads
   * it, merges and tries again. The cache's read-modify-write of a vary
   * record (invalidate.ts) spans a round trip: a PUT's mark written in
   * between was overwritten, and the old variants came back.
   */
  private setVary(key: string, record: VaryRecord, ttl: number, tries: number): Promise<void> {
    const px = Math.max(1, Math.ceil(ttl));
    const since = record.since ?? -1;
    const until = record.until ?? -1;
    const command = this.client.eval(SET_VARY, 1, this.prefix + key, encodeRecord(record), px, since, until) as Promise<number>;
    return this.guard(command).then((written) => {
      if (written === 1 || tries <= 1) return undefined;
      return this.get(key).then((old) => {
        if (old?.kind !== 'vary') return this.setVary(key, record, ttl, tries - 1);
        const later: VaryRecord = { kind: 'vary', names: record.names, since: max(old.since, record.since), until: max(old.until, record.until) };
        // the record lives as long as its later until
        const longer = record.until === undefined || later.until === undefined ? ttl : ttl + later.until - record.until;
        return this.setVary(key, later, longer, tries - 1);
      });
    });
  }

  /**
   * Writes a revalidated entry only while the key still holds the one it
   * freshened (compared by `storedAt`, atomically in a script, as the vary
   * record's compare-and-set): between the lookup and the 304 another
   * gateway may have stored a newer response, or a PUT deleted the entry.
   */
  replace(key: string, record: CacheRecord, ttl: number, storedAt: number): Promise<boolean> {
    const px = Math.max(1, Math.ceil(ttl));
    const command = this.client.eval(REPLACE, 1, this.prefix + key, encodeRecord(record), px, String(storedAt)) as Promise<number>;
    return this.guard(command).then((written) => written === 1);
  }

  delete(key: string): Promise<void> {
    return this.guard(this.client.del(this.prefix + key)).then(() => undefined);
  }

  /**
   * Deletes a superseded entry only while the key still holds it (compared
   * by `storedAt`, atomically in a script, as `replace`): a response stored
   * meanwhile, by this gateway or another, or a vary record, stays.
   */
  deleteIf(key: string, storedAt: number): Promise<void> {
    const command = this.client.eval(DELETE_IF, 1, this.prefix + key, String(storedAt)) as Promise<number>;
    return this.guard(command).then(() => undefined);
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
