import { z } from 'zod';
import { timerDuration } from '../config/common.ts';
import { UWS_MAX_PAYLOAD } from './websocket-options.ts';

/**
 * The most header lines uWebSockets.js 20.30 hands over: a head with more is
 * never given to rxgate (uWS holds the connection until its idle timeout and
 * closes it without an answer), so `maxHeaders` cannot usefully be higher.
 */
export const UWS_MAX_HEADERS = 48;

/** The top-level `limits` key: what the edge refuses before any route or stage runs (see lib/server/limits.ts). */
export const limitsSchema = z.strictObject({
  /** Request line plus header lines, in bytes; over it: 431. */
  maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).optional(),
  /** Header lines; more: 431. */
  maxHeaders: z.number().int().min(1).max(UWS_MAX_HEADERS).optional(),
  /** Path plus `?query`, in bytes; longer: 414. */
  maxUrlLength: z.number().int().min(64).optional(),
  /** Longest wait for the next request-body byte while the gateway reads; then 408 and close. `false`: none. */
  bodyIdleTimeout: z.union([timerDuration, z.literal(false)]).optional(),
  /** Requests in flight per client address; more: 429. `false`: no limit. */
  maxRequestsPerClient: z.union([z.number().int().min(1), z.literal(false)]).optional(),
  /** Bytes of a client's WebSocket message uWS reassembles, on every route; more: the client is closed. */
  maxWebSocketMessage: z.number().int().min(1024).max(UWS_MAX_PAYLOAD).optional(),
});

export type LimitsConfig = z.output<typeof limitsSchema>;
