import { z } from 'zod';
import { MAX_TIMER_MS, TIMER_BOUND, timerDuration } from '../config/common.ts';
import { parseDuration, type Duration } from '../duration.ts';

/** uWS reassembles a client's message up to this, whatever a route allows (its `maxPayloadLength`). */
export const UWS_MAX_PAYLOAD = 64 * 1024 * 1024; // 64 MiB

/** A route's `websocket:` key: `true`, or these options (every one optional). */
export const websocketOptions = z.strictObject({
  maxMessageSize: z.number().int().min(1).max(UWS_MAX_PAYLOAD).optional(),
  maxConnections: z.number().int().min(1).optional(),
  // Each feeds a runtime timer (ws-link.ts): past 2^31-1 ms Node fires it after 1 ms, so an idle check rescheduled every 1 ms.
  idleTimeout: z.union([timerDuration, z.literal(false)]).optional(),
  connectTimeout: timerDuration.optional(),
  highWaterMark: z.number().int().min(1024).optional(),
  maxBuffered: z.number().int().min(1024).optional(),
  stallTimeout: z.union([timerDuration, z.literal(false)]).optional(),
});

export interface WebSocketOptions {
  /** Largest message either side may send, in bytes: larger closes with 1009. At most `limits.maxWebSocketMessage`. @default 16 MiB, or `limits.maxWebSocketMessage` when that is lower */
  maxMessageSize?: number;
  /** Open connections on the route; the next upgrade gets 503. @default 10000 */
  maxConnections?: number;
  /** No message either way for this long closes both sides with 1001; `false`: never. @default '5m' */
  idleTimeout?: Duration | false;
  /** The upstream must accept the upgrade within this, else 504. @default '10s' */
  connectTimeout?: Duration;
  /** Bytes buffered towards one side above which the gateway stops reading from the other. @default 1 MiB */
  highWaterMark?: number;
  /** Bytes buffered towards one side at which that side is a slow consumer: it gets 1008, the other 1013. @default 8 MiB */
  maxBuffered?: number;
  /** Reading paused this long because one side does not drain: slow consumer, as for `maxBuffered`; `false`: never. @default '30s' */
  stallTimeout?: Duration | false;
}

export const websocketDefaults = {
  maxMessageSize: 16 * 1024 * 1024, // 16 MiB
  maxConnections: 10_000,
  idleTimeout: '5m',
  connectTimeout: '10s',
  highWaterMark: 1024 * 1024, // 1 MiB
  maxBuffered: 8 * 1024 * 1024, // 8 MiB
  stallTimeout: '30s',
} satisfies Required<WebSocketOptions>;

/** The options parsed once, durations in ms (0: off). */
export interface WebSocketLimits {
  readonly maxMessageSize: number;
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly highWaterMark: number;
  readonly maxBuffered: number;
  readonly stallTimeoutMs: number;
}

/**
 * Parses a route's `websocket:` value; throws `TypeError` for limits that contradict each other. `cap`:
 * `limits.maxWebSocketMessage`, what uWS reassembles of a client's message before the route sees it (past it uWS closes
 * the client 1006, with no close frame): the route's `maxMessageSize` is at most that, and one set above it is refused.
 */
export function websocketLimits(options: WebSocketOptions | true, route = 'route', cap = UWS_MAX_PAYLOAD): WebSocketLimits {
  const o = { ...websocketDefaults, ...(options === true ? {} : options) };
  const asked = options === true ? undefined : options.maxMessageSize;
  if (asked !== undefined && asked > cap) throw overCap(route, asked, cap);
  const limits: WebSocketLimits = {
    maxMessageSize: Math.min(o.maxMessageSize, cap),
    maxConnections: o.maxConnections,
    idleTimeoutMs: o.idleTimeout === false ? 0 : parseDuration(o.idleTimeout, `${route} websocket.idleTimeout`),
    connectTimeoutMs: parseDuration(o.connectTimeout, `${route} websocket.connectTimeout`),
    highWaterMark: o.highWaterMark,
    maxBuffered: o.maxBuffered,
    stallTimeoutMs: o.stallTimeout === false ? 0 : parseDuration(o.stallTimeout, `${route} websocket.stallTimeout`),
  };
  for (const key of ['idleTimeout', 'connectTimeout', 'stallTimeout'] as const) {
    const ms = limits[`${key}Ms`];
    if (ms > MAX_TIMER_MS) throw new TypeError(`${route} websocket.${key}: ${TIMER_BOUND}`);
  }
  if (limits.maxBuffered <= limits.highWaterMark) {
    throw new TypeError(`${route} websocket.maxBuffered (${limits.maxBuffered}) must be above highWaterMark (${limits.highWaterMark})`);
  }
  if (asked !== undefined) ASKED.set(limits, asked);
  return limits;
}

function overCap(route: string, asked: number, cap: number): TypeError {
  return new TypeError(`${route} websocket.maxMessageSize (${asked}) is over limits.maxWebSocketMessage (${cap}), the most of a client's message uWS takes: lower it, or raise that key`);
}

/** The `maxMessageSize` a route's options set, by the limits `websocketLimits` made of them (a default is not asked for). */
const ASKED = new WeakMap<WebSocketLimits, number>();

/** A WebSocket forward held to its gateway's `limits.maxWebSocketMessage`; `capTo` gives it the capped limits. */
export interface CappedForward {
  readonly route: string;
  readonly limits: WebSocketLimits;
  capTo(limits: WebSocketLimits): void;
}

/**
 * By gateway, keyed by its event bus (as ws-connect.ts keeps each gateway's
 * open counts): its `limits.maxWebSocketMessage` once a `Gateway` has been
 * made on it, and the forwards built for it before that. A forward is built
 * with the events of the gateway that serves it (a YAML route's with the
 * gateway's; one built in code is given them), so each gateway checks its
 * own forwards, never another's (session 11's 7b181dc had one queue for the
 * process, which the next gateway made claimed: review RB).
 */
const GATEWAYS = new WeakMap<object, { cap: number | null; held: CappedForward[] }>();

function gatewayOf(events: object): { cap: number | null; held: CappedForward[] } {
  let g = GATEWAYS.get(events);
  if (g === undefined) GATEWAYS.set(events, g = { cap: null, held: [] });
  return g;
}

/**
 * Holds `forward` to the key of the gateway whose events it publishes on:
 * checked at once when that gateway exists (a reload's routes, built inside
 * the rebuild, are refused with their key path), else when it is made
 * (`capWebSocketForwards`). Throws as `websocketLimits` does for a YAML route.
 */
export function holdToGatewayCap(events: object, forward: CappedForward): void {
  const g = gatewayOf(events);
  if (g.cap === null) g.held.push(forward);
  else capForward(forward, g.cap);
}

/**
 * A `Gateway` on `events` with this key: checks the forwards built for it so
 * far, throwing for the first that asks for more than `cap` (before anything
 * is capped), and caps the rest; later forwards are checked as they are built.
 */
export function capWebSocketForwards(events: object, cap: number = UWS_MAX_PAYLOAD): void {
  const g = gatewayOf(events);
  for (const f of g.held) askedOver(f, cap);
  for (const f of g.held.splice(0)) capForward(f, cap);
  g.cap = cap;
}

/** Throws when `f`'s options asked for more than `cap` (a limits object made by hand: anything but the default). */
function askedOver(f: CappedForward, cap: number): void {
  const asked = ASKED.get(f.limits) ?? (f.limits.maxMessageSize === websocketDefaults.maxMessageSize ? undefined : f.limits.maxMessageSize);
  if (asked !== undefined && asked > cap) throw overCap(`route ${f.route}`, asked, cap);
}

function capForward(f: CappedForward, cap: number): void {
  askedOver(f, cap);
  if (f.limits.maxMessageSize > cap) f.capTo({ ...f.limits, maxMessageSize: cap });
}
