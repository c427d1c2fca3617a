import { parseDuration, type Duration } from '../../duration.ts';
import { systemRuntime, type Runtime } from '../../runtime.ts';
import type { Clock } from '../../types.ts';
import { CountWindowRule } from './count-window.ts';
import { TimeWindowRule } from './time-window.ts';
import { AnyRule, ConsecutiveRule, NeverRule, type TripRule } from './trip-rule.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** One state change, as `state$` emits it and `onTransition` receives it. */
export interface BreakerTransition {
  /** The breaker's key (service name, upstream origin…). */
  key: string;
  from: BreakerState;
  to: BreakerState;
  /** Clock time of the change. */
  at: number;
  /** When `to` is 'open': ms until it turns half-open. */
  resetTimeout?: number;
}

export interface BreakerOptions {
  /** Names the breaker in transitions and logs. @default 'default' */
  key?: string;
  /** Open after this many failures in a row; 0 turns the rule off. @default 5 */
  consecutiveFailures?: number;
  /** Open when this share of calls (0, 1] in the window failed; 0 turns the rule off. @default 0 */
  failureRate?: number;
  /** The failure-rate window: the last `windowSize` calls, or the last `window` of time. @default 'time' */
  windowType?: 'time' | 'count';
  /** Length of the time window. @default '10s' */
  window?: Duration;
  /** Length of the count window, in calls. @default 100 */
  windowSize?: number;
  /** Calls the window must hold before its failure rate counts. @default 10 */
  minimumCalls?: number;
  /** A call whose response head took at least this long counts as a failure; null: never. @default null */
  slowCallDuration?: Duration | null;
  /** Makes the trip rule, replacing the four options above. @default null */
  rule?: (() => TripRule) | null;
  /** Time OPEN before turning HALF_OPEN. @default '30s' */
  resetTimeout?: Duration;
  /** Each re-open straight from HALF_OPEN multiplies the reset timeout by this (1: constant). @default 2 */
  resetBackoff?: number;
  /** Ceiling for the backed-off reset timeout. @default '5m' */
  maxResetTimeout?: Duration;
  /** Concurrent probe calls HALF_OPEN lets through; the rest are rejected at once. @default 1 */
  probes?: number;
  /** Probe successes that close it again. @default 1 */
  probeSuccesses?: number;
  /** Source of time, in ms; overrides `runtime`'s. @default runtime */
  clock?: Clock;
  /** Where time comes from (its monotonic `now()`). @default systemRuntime */
  runtime?: Runtime;
  /** Called on every state change (log it here). @default null */
  onTransition?: ((transition: BreakerTransition) => void) | null;
}

const defaults = {
  key: 'default',
  consecutiveFailures: 5,
  failureRate: 0,
  windowType: 'time',
  window: '10s',
  windowSize: 100,
  minimumCalls: 10,
  slowCallDuration: null,
  rule: null,
  resetTimeout: '30s',
  resetBackoff: 2,
  maxResetTimeout: '5m',
  probes: 1,
  probeSuccesses: 1,
  clock: systemRuntime,
  runtime: systemRuntime,
  onTransition: null,
} satisfies Required<BreakerOptions>;

export interface BreakerConfig {
  key: string;
  rule: () => TripRule;
  slowMs: number;
  resetMs: number;
  backoff: number;
  maxResetMs: number;
  probes: number;
  probeSuccesses: number;
  clock: Clock;
  onTransition: ((t: BreakerTransition) => void) | null;
}

function positiveInt(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name}: expected a positive integer, got ${value}`);
  return value;
}

/** Validates options and builds the rule factory; throws TypeError on bad config. */
export function resolveBreakerOptions(options: BreakerOptions = {}): BreakerConfig {
  const o = { ...defaults, ...options };
  let rule = o.rule;
  if (rule === null) {
    const { consecutiveFailures: n, failureRate: rate, minimumCalls } = o;
    if (!Number.isInteger(n) || n < 0) throw new TypeError(`consecutiveFailures: expected a non-negative integer, got ${n}`);
    if (!(rate >= 0 && rate <= 1)) throw new TypeError(`failureRate: expected a fraction in [0, 1], got ${rate}`);
    if (o.windowType !== 'time' && o.windowType !== 'count') throw new TypeError(`windowType: expected 'time' or 'count', got ${String(o.windowType)}`);
    const windowMs = parseDuration(o.window, 'window');
    const make: (() => TripRule)[] = [];
    if (n > 0) make.push(() => new ConsecutiveRule(n));
    if (rate > 0) {
      make.push(o.windowType === 'count'
        ? () => new CountWindowRule(rate, o.windowSize, minimumCalls)
        : () => new TimeWindowRule(rate, windowMs, minimumCalls));
    }
    rule = make.length === 0 ? () => new NeverRule()
      : make.length === 1 ? make[0]!
      : () => new AnyRule(...make.map((m) => m()));
    rule(); // builds one now so a bad window setting throws at build time
  }
  const resetMs = parseDuration(o.resetTimeout, 'resetTimeout');
  const maxResetMs = parseDuration(o.maxResetTimeout, 'maxResetTimeout');
  if (!(o.resetBackoff >= 1) || !Number.isFinite(o.resetBackoff)) throw new TypeError(`resetBackoff: expected a number >= 1, got ${o.resetBackoff}`);
  return {
    key: o.key,
    rule,
    slowMs: o.slowCallDuration === null ? Infinity : parseDuration(o.slowCallDuration, 'slowCallDuration'),
    resetMs,
    backoff: o.resetBackoff,
    maxResetMs: Math.max(resetMs, maxResetMs),
    probes: positiveInt(o.probes, 'probes'),
    probeSuccesses: positiveInt(o.probeSuccesses, 'probeSuccesses'),
    clock: options.clock ?? o.runtime,
    onTransition: o.onTransition,
  };
}

