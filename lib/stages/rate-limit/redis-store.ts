import type { Subscription } from 'rxjs';
import { ServiceUnavailableError } from '../../errors.ts';
import { parseDuration, type Duration } from '../../duration.ts';
import { gcraResult, toMicros, type GcraRule, type RateLimitResult } from './gcra.ts';
import type { RateLimitStore } from './store.ts';
import { after, systemRuntime, type Runtime } from '../../runtime.ts';
import type { Clock } from '../../types.ts';
import { createRedisClient, type RedisClient } from '../../resources/redis-client.ts';

/**
 * GCRA in one atomic round trip (the same step as `MemoryRateLimitStore.consume`).
 * Time comes from the Redis server's TIME, so gateway instances with skewed
 * clocks still agree; ARGV[3] overrides it for tests only. Returns
 * {allowed, TAT − now, retry-after}, all in µs.
 */
const GCRA_LUA = `
if redis.replicate_commands then redis.replicate_commands() end
local now
local slack = 0
if ARGV[3] ~= nil and ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
  -- expiry runs on Redis's real clock, not the test's: keep the key a minute longer
  slack = 60000
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local nxt = tat + emission
local ahead = nxt - now
if ahead > tolerance then
  return {0, tat - now, ahead - tolerance}
end
redis.call('SET', KEYS[1], string.format('%d', nxt), 'PX', math.ceil(ahead / 1000) + slack)
return {1, ahead, 0}
`;

const COMMAND = 'rxgateGcra';

type GcraCommand = (key: string, emissionUs: number, toleranceUs: number, nowUs: string) => Promise<[number, number, number]>;

/** A pino-shaped logger; only state changes are logged, not every failed check. */
export interface RateLimitLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface RedisRateLimitStoreOptions {
  /** A client from `createRedisClient` (shared with other stores); or give `url`. */
  client?: RedisClient;
  /** Redis URL (see `createRedisClient`); the store then owns the client and `close()` ends it. */
  url?: string;
  /**
   * Prefix of every key the store writes.
   * @default 'rxgate:rl:'
   */
  prefix?: string;
  /**
   * When Redis cannot answer: true admits the request (counted, logged);
   * false refuses it with `ServiceUnavailableError` (503, `retry-after: 1`).
   * @default true
   */
  failOpen?: boolean;
  /**
   * Longest wait for Redis per check before falling back.
   * @default '200ms'
   */
  timeout?: Duration;
  /**
   * Called on every check answered without Redis (wire it to a metric).
   * @default none
   */
  onFallback?: (err: unknown) => void;
  /**
   * Told when Redis becomes unreachable and when it is back.
   * @default console
   */
  logger?: RateLimitLogger;
  /**
   * Where the `timeout` timer runs. Its clocks are not used: time is Redis
   * TIME, so instances with skewed clocks agree (see `clock`).
   * @default systemRuntime
   */
  runtime?: Runtime;
  /**
   * Tests only: pass this clock's time to the script instead of Redis TIME,
   * so a property test can drive time. Never set it in production: instances
   * would then disagree by their clock skew.
   */
  clock?: Clock;
}

const consoleLogger: RateLimitLogger = {
  warn: (obj, msg) => console.warn(`[rxgate] ${msg}`, obj),
  info: (obj, msg) => console.info(`[rxgate] ${msg}`, obj),
};

const defaults = {
  prefix: 'rxgate:rl:',
  failOpen: true,
  timeout: '200ms',
  onFallback: () => {},
  logger: consoleLogger,
  runtime: systemRuntime,
} satisfies Required<Omit<RedisRateLimitStoreOptions, 'client' | 'url' | 'clock'>>;

/**
 * Rate-limit state in Redis, shared by every gateway instance: one EVALSHA
 * per check. A dead Redis never holds a request longer than `timeout`; then
 * `failOpen` decides.
 */
export class RedisRateLimitStore implements RateLimitStore {
  readonly client: RedisClient;
  private readonly owned: boolean;
  private readonly prefix: string;
  private readonly failOpen: boolean;
  private readonly timeout: number;
  private readonly onFallback: (err: unknown) => void;
  private readonly logger: RateLimitLogger;
  private readonly clock: Clock | undefined;
  private readonly runtime: Runtime;
  private readonly command: GcraCommand;
  private healthy = true;
  private fallbackCount = 0;

  constructor(options: RedisRateLimitStoreOptions) {
    if ((options.client === undefined) === (options.url === undefined)) {
      throw new TypeError('redisRateLimitStore: expected exactly one of client, url');
    }
    this.timeout = parseDuration(options.timeout ?? defaults.timeout, 'redisRateLimitStore.timeout');
    this.owned = options.client === undefined;
    this.client = options.client ?? createRedisClient(options.url!, { commandTimeout: this.timeout });
    this.prefix = options.prefix ?? defaults.prefix;
    this.failOpen = options.failOpen ?? defaults.failOpen;
    this.onFallback = options.onFallback ?? defaults.onFallback;
    this.logger = options.logger ?? defaults.logger;
    this.clock = options.clock;
    this.runtime = options.runtime ?? defaults.runtime;
    this.client.defineCommand(COMMAND, { numberOfKeys: 1, lua: GCRA_LUA });
    const client = this.client as unknown as Record<string, GcraCommand>;
    this.command = client[COMMAND]!.bind(client);
  }

  /** Checks answered without Redis since the store was built. */
  get fallbacks(): number {
    return this.fallbackCount;
  }

  async consume(key: string, rule: GcraRule): Promise<RateLimitResult> {
    const now = this.clock === undefined ? '' : String(toMicros(this.clock.now()));
    let reply: [number, number, number];
    try {
      reply = await this.withTimeout(this.command(this.prefix + key, rule.emissionUs, rule.toleranceUs, now));
    } catch (err) {
      return this.fallback(err, rule);
    }
    if (!this.healthy) {
      this.healthy = true;
      this.logger.info({}, 'redis rate-limit store reachable again');
    }
    return gcraResult(rule, reply[0] === 1, reply[1], reply[2]);
  }

  /** Ends the client if the store created it. */
  async close(): Promise<void> {
    if (this.owned) this.client.disconnect();
  }

  private fallback(err: unknown, rule: GcraRule): RateLimitResult {
    this.fallbackCount++;
    if (this.healthy) {
      this.healthy = false;
      this.logger.warn({ err: (err as Error)?.message ?? String(err) },
        `redis rate-limit store unreachable, ${this.failOpen ? 'admitting requests (failOpen)' : 'refusing requests with 503 (failOpen: false)'}`);
    }
    this.onFallback(err);
    if (!this.failOpen) {
      throw new ServiceUnavailableError('rate limiter unavailable', { cause: err, headers: { 'retry-after': '1' } });
    }
    // As if the key were fresh: the best guess without its state.
    return gcraResult(rule, true, rule.emissionUs, 0);
  }

  /**
   * The client's own command timeout covers clients we built; this also
   * covers one handed in without it (an I/O guard, not limiter logic).
   */
  private withTimeout<T>(promise: Promise<T>): Promise<T> {
    let timer: Subscription | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = after(this.runtime, this.timeout, () => reject(new Error(`redis did not answer within ${this.timeout}ms`)));
    });
    return Promise.race([promise, expired]).finally(() => timer!.unsubscribe());
  }
}
