import { throwError, type Observable } from 'rxjs';
import { parseDuration, type Duration } from '../duration.ts';
import { HeadersTooLargeError, UriTooLongError, type GatewayError } from '../errors.ts';
import { CidrList } from '../stages/ip-filter/cidr.ts';
import { ClientAddressResolver } from '../stages/ip-filter/client-address.ts';
import type { GatewayRequest, GatewayResponse } from '../types.ts';
import { lastHeadFieldBytes, lastHeadFields } from './head-rules.ts';
import { ClientSlots, IdleSweep, ROUNDS, type IdleWatched } from './limits-cores.ts';
import { UWS_MAX_HEADERS, type LimitsConfig } from './limits-schema.ts';
import { setUwsHeadersSize } from './uws-head-size.ts';
import { UWS_MAX_PAYLOAD } from './websocket-options.ts';

export type { IdleWatched } from './limits-cores.ts';

/** How an edge refusal made before routing is answered: `err` through the refusal policy of the route `req` would reach. */
export type RefusalAnswer = (req: GatewayRequest, err: GatewayError) => Observable<never>;
export { admit } from './admit.ts';

export interface LimitsOptions {
  /** Request line plus header lines (`name: value\r\n` each), in bytes; over it: `431 HEADERS_TOO_LARGE`. @default 32768 (nginx's 4 × 8k buffers) */
  maxHeaderBytes?: number;
  /** Header lines; more: `431 HEADERS_TOO_LARGE`. At most 48, all uWS 20.30 hands over. @default 48 */
  maxHeaders?: number;
  /** The request target as forwarded (path plus `?query`), in bytes; longer: `414 URI_TOO_LONG`. @default 8192 (nginx: one 8k buffer) */
  maxUrlLength?: number;
  /**
   * Longest gap between two request-body chunks while the pipeline reads
   * (time the gateway itself holds the client back does not count); then
   * `408 REQUEST_TIMEOUT` and the connection closes. `false`: none.
   * @default '5s' (uWS 20.30 drops a body slower than 16 KiB per 10 s itself, without an answer)
   */
  bodyIdleTimeout?: Duration | false;
  /** Requests in flight per client address (`req.clientAddress ?? remoteAddress`); more: `429 TOO_MANY_IN_FLIGHT`. `false`: no limit. @default false */
  maxRequestsPerClient?: number | false;
  /**
   * The most of a client's WebSocket message uWS reassembles, on every route,
   * before a route's `maxMessageSize` can refuse it: each client connection
   * may hold this much while it sends. Past it uWS closes the client at once
   * (1006, no close frame). Set it to the largest `maxMessageSize` of the
   * routes. Read when the edge is built: a reload does not change it.
   * @default 67108864 (64 MiB, uWS's bound)
   */
  maxWebSocketMessage?: number;
  /** Peers whose `X-Forwarded-For` names the client (the top-level `trustedProxies`). @default [] */
  trustedProxies?: readonly string[];
}

export const limitsDefaults = {
  maxHeaderBytes: 32 * 1024,
  maxHeaders: UWS_MAX_HEADERS,
  maxUrlLength: 8 * 1024,
  bodyIdleTimeout: '5s',
  maxRequestsPerClient: false,
  maxWebSocketMessage: UWS_MAX_PAYLOAD,
  trustedProxies: [],
} satisfies Required<LimitsOptions>;

/** The YAML `limits` (and the top-level `trustedProxies`) as options: keys left out take their defaults. */
export function limitsFromConfig(config: LimitsConfig = {}, trustedProxies?: readonly string[]): LimitsOptions {
  const options: LimitsOptions = {};
  for (const [key, value] of Object.entries(config)) if (value !== undefined) (options as Record<string, unknown>)[key] = value;
  if (trustedProxies !== undefined) options.trustedProxies = trustedProxies;
  return options;
}

/** The `UWS_HTTP_MAX_HEADERS_SIZE` uws.ts sets before the native module loads: `maxHeaderBytes` of the limits built last before that (the first gateway's). */

/**
 * The edge's limits (`limits:` in YAML), built once: the head and target
 * sizes checked on every request, the body idle sweep and the per-client
 * count when they are on. See `admit`.
 */
export class EdgeLimits {
  readonly maxHeaderBytes: number;
  readonly maxHeaders: number;
  readonly maxUrlLength: number;
  readonly maxWebSocketMessage: number;
  /** ms; 0 when off. */
  readonly bodyIdleTimeout: number;
  readonly sweep: IdleSweep | null;
  readonly slots: ClientSlots | null;
  private readonly resolver: ClientAddressResolver | null;
  private timer: ReturnType<typeof setInterval> | null = null;

  /**
   * @param answer how `refused` answers: the gateway's route table (its
   * routes' cors), so a page can read a 429, 414 or 431; none: the error as it is
   */
  constructor(options: LimitsOptions = {}, private readonly answer: RefusalAnswer | null = null) {
    const o = { ...limitsDefaults, ...options };
    for (const key of ['maxHeaderBytes', 'maxHeaders', 'maxUrlLength'] as const) {
      if (!Number.isInteger(o[key]) || o[key] < 1) throw new TypeError(`limits.${key}: expected a positive integer, got ${o[key]}`);
    }
    if (o.maxHeaders > UWS_MAX_HEADERS) throw new TypeError(`limits.maxHeaders: uWebSockets.js hands over at most ${UWS_MAX_HEADERS} header lines, got ${o.maxHeaders}`);
    if (!Number.isInteger(o.maxWebSocketMessage) || o.maxWebSocketMessage < 1024 || o.maxWebSocketMessage > UWS_MAX_PAYLOAD) {
      throw new TypeError(`limits.maxWebSocketMessage: expected bytes from 1024 to ${UWS_MAX_PAYLOAD}, got ${o.maxWebSocketMessage}`);
    }
    const max = o.maxRequestsPerClient;
    if (max !== false && (!Number.isInteger(max) || max < 1)) throw new TypeError(`limits.maxRequestsPerClient: expected a positive integer or false, got ${max}`);
    this.maxHeaderBytes = o.maxHeaderBytes;
    this.maxHeaders = o.maxHeaders;
    this.maxUrlLength = o.maxUrlLength;
    this.maxWebSocketMessage = o.maxWebSocketMessage;
    this.bodyIdleTimeout = o.bodyIdleTimeout === false ? 0 : parseDuration(o.bodyIdleTimeout, 'limits.bodyIdleTimeout');
    this.sweep = this.bodyIdleTimeout > 0 ? new IdleSweep() : null;
    this.slots = max === false ? null : new ClientSlots(max);
    this.resolver = max !== false && o.trustedProxies.length > 0 ? new ClientAddressResolver(new CidrList(o.trustedProxies, 'trustedProxies')) : null;
    setUwsHeadersSize(this.maxHeaderBytes);
  }

  /** The error a request's head or target earns, or null (reads the head `readHead` just read). */
  refusal(req: GatewayRequest): GatewayError | null {
    const target = req.path.length + (req.query === '' ? 0 : req.query.length + 1);
    if (target > this.maxUrlLength) return new UriTooLongError(`the request target is longer than ${this.maxUrlLength} bytes`);
    if (lastHeadFields() > this.maxHeaders) return new HeadersTooLargeError(`the request has more than ${this.maxHeaders} header fields`);
    // The request line as `METHOD target HTTP/1.1\r\n`, the header lines, the blank line.
    const bytes = req.method.length + target + 12 + lastHeadFieldBytes() + 2;
    if (bytes > this.maxHeaderBytes) return new HeadersTooLargeError(`the request head is larger than ${this.maxHeaderBytes} bytes`);
    return null;
  }

  /** `err`, a refusal of these limits, as the answer to `req` (see the constructor's `answer`). Off the hot path. */
  refused(req: GatewayRequest, err: GatewayError): Observable<GatewayResponse> {
    return this.answer === null ? throwError(() => err) : this.answer(req, err);
  }

  /** The address `maxRequestsPerClient` counts by. */
  clientOf(req: GatewayRequest): string {
    return req.clientAddress ?? (this.resolver === null ? req.remoteAddress : this.resolver.resolve(req.remoteAddress, req.headers['x-forwarded-for']));
  }

  watch(body: IdleWatched): void {
    this.sweep!.add(body);
    if (this.timer !== null) return;
    this.timer = setInterval(() => {
      this.sweep!.sweep();
      if (this.sweep!.size === 0) this.stop();
    }, Math.max(1, this.bodyIdleTimeout / ROUNDS));
    this.timer.unref();
  }

  unwatch(body: IdleWatched): void {
    this.sweep?.delete(body);
  }

  /** Stops the sweep timer (the edge is closing). */
  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
