import { describe, expect, it } from 'vitest';
import { checkBuild } from '../../lib/config/check.ts';
import { ConfigBuildError } from '../../lib/config/build-errors.ts';
import { ConfigError, parseConfig } from '../../lib/config/load.ts';
import { defaultCap } from '../../lib/stages/retry/retry.ts';
import { websocketLimits } from '../../lib/server/websocket-options.ts';

/**
 * Values the schema accepted that are surely not meant: refused with the
 * key path, by the schema where one object says it all, else when the
 * stage is built (which `--check` does: checkBuild).
 */

const SERVICES = 'services:\n  users: { upstreams: ["http://127.0.0.1:1"] }\n';

function problems(yaml: string): string[] {
  try {
    parseConfig(yaml, 'values.yaml', {});
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

async function built(yaml: string): Promise<string[]> {
  try {
    await checkBuild(parseConfig(yaml, 'values.yaml', {}), null);
  } catch (err) {
    if (err instanceof ConfigBuildError) return [...err.problems];
    throw err;
  }
  return [];
}

const route = (keys: string): string => `${SERVICES}routes:\n  - { path: /a, service: users, ${keys} }\n`;

describe('values refused with their key path', () => {
  it('refuses a duration that feeds a timer past 2^31-1 ms (Node fires it at once)', () => {
    const TOO_LONG = "must be at most 24.8 days (2^31-1 ms, Node's timer limit)";
    // timeouts.* go through deadline lists, which clamp (timeouts-long.test.ts): accepted as before 69ba347.
    expect(problems(route('timeouts: { total: 720h, perAttempt: 720h, exchange: 9000h }'))).toEqual([]);
    expect(problems(`services:\n  users: { upstreams: ["http://127.0.0.1:1"], timeout: 2147483648, health: { path: /h, interval: 600h } }\nroutes:\n  - { path: /a, service: users, streamIdleTimeout: 700h, retry: { cap: 1000h } }\n`)).toEqual([
      `services.users.timeout: ${TOO_LONG}`,
      `services.users.health.interval: ${TOO_LONG}`,
      `routes[0].streamIdleTimeout: ${TOO_LONG}`,
      `routes[0].retry.cap: ${TOO_LONG}`,
    ]);
    expect(problems(`limits: { bodyIdleTimeout: 9000h }\ndrain: { timeout: 9000h }\n${route('circuitBreaker: { resetTimeout: 9000h }, hedge: { after: 9000h }')}`)).toEqual([
      `limits.bodyIdleTimeout: ${TOO_LONG}`,
      `drain.timeout: ${TOO_LONG}`,
      `routes[0].hedge.after: ${TOO_LONG}`,
      `routes[0].circuitBreaker.resetTimeout: ${TOO_LONG}`,
    ]);
    // Not a timer: a cache entry may live a year.
    expect(problems(route('cache: { ttl: 8760h }'))).toEqual([]);
  });

  it('refuses a probe interval or timeout, or a discovery file\'s interval, of 0 (checked by the probes and the discovery at start only: --check builds neither)', () => {
    expect(problems(`services:
  users: { upstreams: ["http://127.0.0.1:1"], health: { path: /h, interval: 0, timeout: 0ms } }
  found: { discovery: { file: { path: /nonexistent, interval: 0s } } }
routes:\n  - { path: /a, service: users }\n  - { path: /b, service: found }\n`)).toEqual([
      'services.users.health.interval: must be more than 0',
      'services.users.health.timeout: must be more than 0',
      'services.found.discovery.file.interval: must be more than 0',
    ]);
  });

  it('refuses hedge.max: 0 (no hedge sent: hedge: false says that)', () => {
    expect(problems(route('hedge: { max: 0 }'))).toEqual(['routes[0].hedge.max: must be at least 1 (hedge: false turns hedging off)']);
  });

  it('refuses WebSocket timers past 2^31-1 ms, keeping false for none', () => {
    // idleTimeout: 600h rescheduled its idle check about every 1 ms, a TimeoutOverflowWarning each time.
    expect(problems(route('websocket: { idleTimeout: 600h, connectTimeout: 600h, stallTimeout: 600h }')).map((p) => p.split(':')[0]))
      .toEqual(['routes[0].websocket.idleTimeout', 'routes[0].websocket.connectTimeout', 'routes[0].websocket.stallTimeout']);
    expect(problems(route('websocket: { idleTimeout: false, stallTimeout: false, connectTimeout: 596h }'))).toEqual([]);
    expect(() => websocketLimits({ idleTimeout: '600h' }, 'route /ws')).toThrow("route /ws websocket.idleTimeout: must be at most 24.8 days (2^31-1 ms, Node's timer limit)");
  });

  it('refuses adaptive concurrency limits out of order', async () => {
    expect(problems(route('adaptiveConcurrency: { minLimit: 50, maxLimit: 10 }'))).toEqual(['routes[0].adaptiveConcurrency.minLimit: 50 is more than maxLimit (10)']);
    expect(problems(route('adaptiveConcurrency: { initialLimit: 5, minLimit: 10 }'))).toEqual(['routes[0].adaptiveConcurrency.initialLimit: 5 is outside [minLimit, maxLimit] (10, 1000)']);
    // Against a default (initialLimit 20): the stage says it when built.
    expect(await built(route('adaptiveConcurrency: { maxLimit: 10 }'))).toEqual(['routes[0].adaptiveConcurrency: expected 1 ≤ minLimit ≤ initialLimit ≤ maxLimit, got 3, 20, 10']);
  });

  it('refuses a retry base above its cap, the default cap and a service\'s included', async () => {
    expect(await built(route('retry: { base: 10s, cap: 1s }'))).toEqual(['routes[0].retry.base: 10000ms is more than cap (1000ms): the backoff would never grow from it']);
    // No cap: 10 × base (Envoy's max_interval default), as the 5s cap let such a config start before.
    expect(await built(route('retry: { attempts: 3, base: 10s }'))).toEqual([]);
    expect(await built(`services:\n  users: { upstreams: ["http://127.0.0.1:1"], retry: { attempts: 3, base: 10s } }\nroutes:\n  - { path: /a, service: users }\n`)).toEqual([]);
    expect(await built(`services:\n  users: { upstreams: ["http://127.0.0.1:1"], retry: { cap: 200ms } }\nroutes:\n  - { path: /a, service: users, retry: { base: 1s } }\n`))
      .toEqual(['routes[0].retry.base: 1000ms is more than cap (200ms): the backoff would never grow from it']);
    expect(await built(route('retry: { base: 1s, cap: 1s }'))).toEqual([]);
  });

  it('reports a retry base written on a service under the service, once', async () => {
    expect(await built(`services:\n  users: { upstreams: ["http://127.0.0.1:1"], retry: { base: 10s, cap: 1s } }\nroutes:\n  - { path: /a, service: users }\n  - { path: /b, service: users, retry: { attempts: 4 } }\n`))
      .toEqual(['services.users.retry.base: 10000ms is more than cap (1000ms): the backoff would never grow from it']);
  });

  it('defaults the retry cap to 5s, or 10 × base when that is longer, within the timer limit', () => {
    expect(defaultCap(100)).toBe(5000);
    expect(defaultCap(10_000)).toBe(100_000);
    expect(defaultCap(2 ** 31 - 1)).toBe(2 ** 31 - 1);
  });

  it('refuses a CIDR with bits set past its prefix, naming both readings', () => {
    expect(problems(`trustedProxies: ["10.0.0.1/8", "10.0.0.0/8", "192.168.1.7"]\nipFilter: { allow: ["2001:db8::1/32"] }\n${route('ipFilter: { deny: ["172.16.5.4/12"] }')}`)).toEqual([
      'trustedProxies[0]: 10.0.0.1/8 has bits set past its /8 prefix: write 10.0.0.0/8 for the network, or 10.0.0.1 for the one address',
      'ipFilter.allow[0]: 2001:db8::1/32 has bits set past its /32 prefix: write 2001:db8::/32 for the network, or 2001:db8::1 for the one address',
      'routes[0].ipFilter.deny[0]: 172.16.5.4/12 has bits set past its /12 prefix: write 172.16.0.0/12 for the network, or 172.16.5.4 for the one address',
    ]);
  });

  it('still refuses rateLimit.limit: 0 (it was already: a limit of none is a deny list)', () => {
    expect(problems(route('rateLimit: { limit: 0, window: 1s }'))).toEqual(['routes[0].rateLimit.limit: Too small: expected number to be >=1']);
  });
});
