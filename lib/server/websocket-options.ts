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
  if (options !== true && options.maxMessageSize !== undefined && options.maxMessageSize > cap) {
    throw new TypeError(`${route} websocket.maxMessageSize (${options.maxMessageSize}) is over limits.maxWebSocketMessage (${cap}), the most of a client's message uWS takes: lower it, or raise that key`);
  }
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
  return limits;
}
