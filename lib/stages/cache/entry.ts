import type { BufferedBody } from '../../body.ts';
import { HOP_BY_HOP, connectionTokens } from '../../headers.ts';
import type { HeadBytes } from '../../server/head-bytes.ts';
import type { Freshness } from './freshness.ts';

/** A stored response: what to replay and how long it stays usable. */
export interface CacheEntry extends Freshness {
  readonly kind: 'entry';
  readonly status: number;
  readonly statusText: string | undefined;
  /** Flat `[name, value, …]` list without hop-by-hop headers and without `age`. */
  readonly headers: readonly string[];
  /** Null when the upstream sent no body. */
  readonly body: BufferedBody | null;
  /** The response's sorted `Vary` names ([] when it does not vary). */
  readonly vary: readonly string[];
  /** Its headers' lines as the writer makes them once, for an entry decoded for many hits (packed.ts). */
  readonly head?: HeadBytes | undefined;
}

/** Stored under a base key when the response varies: where to look next. */
export interface VaryRecord {
  readonly kind: 'vary';
  readonly names: readonly string[];
  /**
   * When an unsafe method last invalidated the URL (the cache's clock, ms):
   * variants stored before it are not served (invalidate.ts).
   */
  readonly since?: number | undefined;
  /** Until when (ms) a variant written under the record may live: a rewrite keeps the later time. */
  readonly until?: number | undefined;
}

export type CacheRecord = CacheEntry | VaryRecord;

/**
 * Where entries live. Either method may answer synchronously (the memory
 * store does, so a hit needs no microtask) or with a promise (Redis). A
 * rejected or throwing `get` turns that request into a cache bypass.
 */
export interface CacheStore {
  /**
   * True when `set` copies an entry's body bytes rather than keeping its
   * chunks (the memory store packs them, the Redis store encodes them). The
   * miss path then hands over the chunks as they came from upstream (views
   * into undici's socket reads); otherwise it copies them first, so a store
   * that keeps them does not keep whole socket buffers alive.
   */
  readonly copiesBodies?: boolean;
  get(key: string): CacheRecord | undefined | PromiseLike<CacheRecord | undefined>;
  /** Keep `record` for `ttl` ms. */
  set(key: string, record: CacheRecord, ttl: number): void | PromiseLike<void>;
  delete?(key: string): void | PromiseLike<void>;
  /**
   * `delete`, only while `key` holds the entry stored at `storedAt` (as
   * `replace` checks): a superseded entry's delete never takes a newer one,
   * or a vary record, with it. Without it, a superseded entry is deleted
   * with `delete`.
   */
  deleteIf?(key: string, storedAt: number): void | PromiseLike<void>;
  /**
   * Keep `record` for `ttl` ms, only if `key` still holds the entry stored
   * at `storedAt` (the one a 304 freshened); answers whether it did. Without
   * it, a freshened entry is written with `set`.
   */
  replace?(key: string, record: CacheRecord, ttl: number, storedAt: number): boolean | PromiseLike<boolean>;
}

export function isPromiseLike<T>(v: T | PromiseLike<T>): v is PromiseLike<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** All values of a response header joined with ', ' (undefined when absent). */
export function headerValue(headers: readonly string[], name: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) out = out === undefined ? headers[i + 1]! : `${out}, ${headers[i + 1]!}`;
  }
  return out;
}

/**
 * The headers worth replaying: hop-by-hop headers (and any the `Connection`
 * header names) belong to one connection, `age` is recomputed per hit, and an
 * upstream's own `x-cache` would be read ahead of the gateway's (A12's F7).
 */
export function storableHeaders(headers: readonly string[]): string[] {
  // Most responses have none to leave out (the forward path has dropped the
  // hop-by-hop headers already): then one copy of the list, instead of a set
  // lookup and a push per header (docs/cache-memory.md, ninth round).
  let i = 0;
  while (i < headers.length && !droppable(headers[i]!)) i += 2;
  if (i >= headers.length) return withRoom(headers);
  const named = connectionTokens(headerValue(headers, 'connection'));
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (HOP_BY_HOP.has(name) || name === 'age' || name === 'x-cache' || named?.has(name) === true) continue;
    out.push(name, headers[i + 1]!);
  }
  return out;
}

/**
 * A copy of `headers` with room for one more pair: a stored 200 gets
 * `accept-ranges` (range.ts), and a push onto `slice`'s exact copy moved it
 * into a new backing store half again as large (~290 heap bytes per stored
 * miss; bench/memory/cache-miss.ts --sites). Setting the length back leaves
 * the room (V8 trims only when less than half is kept).
 */
function withRoom(headers: readonly string[]): string[] {
  const out = withPair(headers, '', '');
  out.length = headers.length;
  return out;
}

/**
 * `headers` without an upstream's `x-cache`, then the gateway's: the client
 * reads one value, the gateway's (A12's F7). Without one, `withPair`'s copy.
 */
export function withCacheStatus(headers: readonly string[], status: string): string[] {
  const n = headers.length;
  let i = 0;
  while (i < n && headers[i] !== 'x-cache') i += 2;
  if (i >= n) return withPair(headers, 'x-cache', status);
  const out: string[] = [];
  for (let j = 0; j < n; j += 2) if (headers[j] !== 'x-cache') out.push(headers[j]!, headers[j + 1]!);
  out.push('x-cache', status);
  return out;
}

/**
 * `headers` and one more pair (`x-cache` on a miss), in an array of exactly
 * that length: a spread into an array literal grows its backing store as it
 * goes (with the response object, 352 against 192 heap bytes).
 */
export function withPair(headers: readonly string[], name: string, value: string): string[] {
  const n = headers.length;
  const out = new Array<string>(n + 2);
  for (let i = 0; i < n; i++) out[i] = headers[i]!;
  out[n] = name;
  out[n + 1] = value;
  return out;
}

/** Names `storableHeaders` may leave out, by length: a name of another length is kept without a set lookup. */
const DROP_LENGTHS = ((): Uint8Array => {
  const names = [...HOP_BY_HOP, 'age', 'x-cache'];
  const out = new Uint8Array(Math.max(...names.map((n) => n.length)) + 1);
  for (const n of names) out[n.length] = 1;
  return out;
})();

/** A hop-by-hop header, `age` or `x-cache`: without a `Connection` header (itself hop-by-hop), the only names left out. */
function droppable(name: string): boolean {
  return name.length < DROP_LENGTHS.length && DROP_LENGTHS[name.length] === 1 && (name === 'age' || name === 'x-cache' || HOP_BY_HOP.has(name));
}
