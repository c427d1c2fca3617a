import { createRequire } from 'node:module';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { parseDuration, type Duration } from '../duration.ts';
import { after, systemRuntime, type Runtime } from '../runtime.ts';

/** What the gateway's Redis stores talk to: one server, a Sentinel-managed master, or a Cluster. */
export type RedisClient = Redis | Cluster;

export interface RedisClientOptions {
  /**
   * A command not answered within this fails, so a request never waits on a
   * dead or partitioned Redis for longer.
   * @default '200ms'
   */
  commandTimeout?: Duration;
  /**
   * Timeout of one connection attempt.
   * @default '2s'
   */
  connectTimeout?: Duration;
  /**
   * How many times a command is resent after a reconnect before it fails.
   * @default 1
   */
  maxRetriesPerRequest?: number;
  /**
   * Longest pause between reconnect attempts (they back off up to it, forever).
   * @default '2s'
   */
  maxReconnectDelay?: Duration;
  /**
   * Called with every connection error. ioredis emits them on every failed
   * reconnect, so the stores log state changes rather than these.
   * @default ignore
   */
  onError?: (err: Error) => void;
}

const defaults = {
  commandTimeout: '200ms',
  connectTimeout: '2s',
  maxRetriesPerRequest: 1,
  maxReconnectDelay: '2s',
  onError: () => {},
} satisfies Required<RedisClientOptions>;

export interface RedisNode {
  host: string;
  port: number;
}

/** A Redis URL taken apart (see `createRedisClient` for the forms). */
export type RedisTarget =
  | { kind: 'standalone'; url: string }
  | { kind: 'cluster'; nodes: RedisNode[]; tls: boolean; username?: string; password?: string }
  | {
    kind: 'sentinel'; sentinels: RedisNode[]; name: string; db: number; tls: boolean;
    username?: string; password?: string; sentinelUsername?: string; sentinelPassword?: string;
  };

/**
 * ioredis, loaded on the first client: a gateway whose config names no Redis
 * never loads it (1.8 MiB of V8 heap that every mark-compact would walk;
 * bench/memory/module-heap.mjs, docs/gc-promotion.md "Tenth round"). It is
 * CommonJS, so `require` gives the same classes an `import` would.
 */
let ioredis: typeof import('ioredis') | undefined;
const loadIoredis = (): typeof import('ioredis') => (ioredis ??= createRequire(import.meta.url)('ioredis') as typeof import('ioredis'));

const MULTI_HOST = /^(rediss?)\+(cluster|sentinel):\/\/(?:([^@/]*)@)?([^/?#]+)(\/[^?#]*)?(?:\?([^#]*))?$/i;

/**
 * Parses the URL forms `createRedisClient` accepts; throws `TypeError` on
 * anything else.
 */
export function parseRedisUrl(url: string): RedisTarget {
  if (/^rediss?:\/\//i.test(url)) {
    try {
      new URL(url);
    } catch {
      throw new TypeError(`redis: not a URL: ${JSON.stringify(redact(url))}`);
    }
    return { kind: 'standalone', url };
  }
  const m = MULTI_HOST.exec(url);
  if (m === null) {
    throw new TypeError(`redis: expected redis://, rediss://, redis+cluster://h1:p1,h2:p2 or redis+sentinel://h1:p1,h2:p2/master; got ${JSON.stringify(redact(url))}`);
  }
  const [, scheme, kind, userinfo, hostList, path, query] = m;
  const tls = scheme!.toLowerCase() === 'rediss';
  const isCluster = kind!.toLowerCase() === 'cluster';
  const nodes = hostList!.split(',').map((h) => parseHostPort(h, isCluster ? 6379 : 26379));
  const auth: { username?: string; password?: string } = {};
  if (userinfo !== undefined && userinfo !== '') {
    const colon = userinfo.indexOf(':');
    const user = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon));
    if (user !== '') auth.username = user;
    if (colon !== -1) auth.password = decodeURIComponent(userinfo.slice(colon + 1));
  }
  const params = new URLSearchParams(query ?? '');
  if (isCluster) {
    if (path !== undefined && path !== '' && path !== '/') throw new TypeError('redis+cluster: a cluster URL has no path (clusters have no databases)');
    return { kind: 'cluster', nodes, tls, ...auth };
  }
  const segments = (path ?? '').split('/').filter((s) => s !== '');
  if (segments.length === 0 || segments.length > 2) {
    throw new TypeError('redis+sentinel: expected the master name as the path, e.g. redis+sentinel://h1:26379,h2:26379/mymaster[/db]');
  }
  const db = segments[1] === undefined ? 0 : Number(segments[1]);
  if (!Number.isInteger(db) || db < 0) throw new TypeError(`redis+sentinel: bad database number ${JSON.stringify(segments[1])}`);
  const target: RedisTarget = { kind: 'sentinel', sentinels: nodes, name: decodeURIComponent(segments[0]!), db, tls, ...auth };
  const sentinelUsername = params.get('sentinelUsername');
  const sentinelPassword = params.get('sentinelPassword');
  if (sentinelUsername !== null) target.sentinelUsername = sentinelUsername;
  if (sentinelPassword !== null) target.sentinelPassword = sentinelPassword;
  return target;
}

function parseHostPort(text: string, defaultPort: number): RedisNode {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::(\d+))?$/i.exec(text.trim());
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (m === null || port < 1 || port > 65535) throw new TypeError(`redis: bad host:port ${JSON.stringify(text)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

/**
 * One ioredis client for the gateway's Redis-backed stores (rate limits,
 * cache), configured so nothing waits on a dead Redis: no offline queue
 * (commands fail at once while disconnected), a short command timeout, few
 * resends, and reconnects in the background with capped backoff.
 *
 * URL forms:
 * - `redis://[user:pass@]host:6379[/db]`, `rediss://…` (TLS)
 * - `redis+cluster://[user:pass@]h1:6379,h2:6379` (`rediss+cluster://` for TLS)
 * - `redis+sentinel://[user:pass@]s1:26379,s2:26379/mymaster[/db][?sentinelPassword=…&sentinelUsername=…]`
 *   (`rediss+sentinel://` for TLS to master and sentinels; user:pass is the master's)
 */
export function createRedisClient(url: string, options: RedisClientOptions = {}): RedisClient {
  const target = parseRedisUrl(url);
  const maxRetriesPerRequest = options.maxRetriesPerRequest ?? defaults.maxRetriesPerRequest;
  if (!Number.isInteger(maxRetriesPerRequest) || maxRetriesPerRequest < 0) {
    throw new TypeError(`redis: maxRetriesPerRequest must be a non-negative integer, got ${maxRetriesPerRequest}`);
  }
  const maxDelay = parseDuration(options.maxReconnectDelay ?? defaults.maxReconnectDelay, 'redis.maxReconnectDelay');
  const retryStrategy = (times: number): number => Math.min(times * 100, maxDelay);
  const common: RedisOptions = {
    commandTimeout: parseDuration(options.commandTimeout ?? defaults.commandTimeout, 'redis.commandTimeout'),
    connectTimeout: parseDuration(options.connectTimeout ?? defaults.connectTimeout, 'redis.connectTimeout'),
    maxRetriesPerRequest,
    enableOfflineQueue: false,
    connectionName: 'rxgate',
  };
  const onError = options.onError ?? defaults.onError;

  const { Cluster, Redis } = loadIoredis();
  let client: RedisClient;
  switch (target.kind) {
    case 'standalone':
      client = new Redis(target.url, { ...common, retryStrategy });
      break;
    case 'cluster': {
      const redisOptions: RedisOptions = { ...common };
      if (target.tls) redisOptions.tls = {};
      if (target.username !== undefined) redisOptions.username = target.username;
      if (target.password !== undefined) redisOptions.password = target.password;
      delete redisOptions.enableOfflineQueue; // a Cluster option, not a per-node one
      client = new Cluster(target.nodes, {
        enableOfflineQueue: false,
        clusterRetryStrategy: retryStrategy,
        redisOptions,
      });
      break;
    }
    case 'sentinel': {
      const sentinelOptions: RedisOptions = {
        ...common,
        sentinels: target.sentinels,
        name: target.name,
        db: target.db,
        sentinelRetryStrategy: retryStrategy,
        retryStrategy,
      };
      if (target.tls) {
        sentinelOptions.tls = {};
        sentinelOptions.enableTLSForSentinelMode = true;
      }
      if (target.username !== undefined) sentinelOptions.username = target.username;
      if (target.password !== undefined) sentinelOptions.password = target.password;
      if (target.sentinelUsername !== undefined) sentinelOptions.sentinelUsername = target.sentinelUsername;
      if (target.sentinelPassword !== undefined) sentinelOptions.sentinelPassword = target.sentinelPassword;
      client = new Redis(sentinelOptions);
      break;
    }
  }
  // Without a listener ioredis reports every failed reconnect as an unhandled error event.
  client.on('error', onError);
  return client;
}

/**
 * Resolves once the client is ready for commands. With the offline queue off,
 * commands sent before that fail at once (and the stores fall back), so call
 * this at startup when the first requests should already see Redis. For a
 * Cluster that means every master too: ioredis opens its connections to the
 * nodes lazily, on the first command for one of their slots, and those first
 * commands would wait for a connect and a handshake inside their command
 * timeout. Rejects when `client` is not ready within `timeout` (on
 * `runtime`'s scheduler, default `systemRuntime`).
 */
export function redisReady(client: RedisClient, timeout: Duration = '5s', runtime: Runtime = systemRuntime): Promise<void> {
  const ms = parseDuration(timeout, 'redisReady.timeout');
  const { Cluster } = loadIoredis();
  if (client.status === 'ready' && !(client instanceof Cluster)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    let waiting: Redis | Cluster = client;
    const timer = after(runtime, ms, () => {
      waiting.off('ready', onReady);
      reject(new Error(`redis not ready within ${ms}ms (status ${waiting.status})`));
    });
    function onReady(): void {
      const next = client instanceof Cluster ? client.nodes('master').find((n) => n.status !== 'ready') : undefined;
      if (next === undefined) {
        timer.unsubscribe();
        resolve();
        return;
      }
      waiting = next;
      next.once('ready', onReady);
      // A lazy node connects on its first command, or when asked; a failed connect retries on its own.
      if (next.status === 'wait') next.connect().catch(() => {});
    }
    if (client.status === 'ready') onReady();
    else client.once('ready', onReady);
  });
}
