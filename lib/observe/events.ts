import diagnostics from 'node:diagnostics_channel';
import type { BreakerState } from '../stages/circuit-breaker/breaker.ts';

/**
 * What stages and the core report, by event type. Stages publish here and
 * never import a metrics or log library: `lib/observe/wire.ts` turns events
 * into Prometheus metrics and log lines. Every event is also published on
 * the `node:diagnostics_channel` channel `rxgate:<type>` when something
 * subscribes there (as undici does), for tooling outside the gateway.
 */
export interface GatewayEventMap {
  /** A retry is about to wait and try again. */
  retry: { service: string; route: string; attempt: number; status?: number; error?: unknown; delay?: number };
  /** The retry budget refused a retry. */
  retryRefused: { service: string; route: string; requestId: string };
  /** A request refused by a rate limit. */
  rateLimited: { route: string };
  /** A circuit breaker changed state; `replaced`: one a reload has replaced (it only settles the requests it admitted). */
  breakerTransition: { service: string; breaker: string; from: BreakerState; to: BreakerState; replaced?: true };
  /** A service breaker was made (at start, or by a reload that changed its options): closed, with no transition. */
  breakerBuilt: { service: string; breaker: string };
  /** Anything that degrades without failing: a Redis fallback, a bypassed cache… */
  degraded: { reason: string; message?: string; err?: unknown };
  /** A degraded dependency is back. */
  recovered: { reason: string; message?: string };
  /** Passive ejection took an upstream instance out of rotation for `forMs`. */
  upstreamEjected: { service: string; instance: string; forMs: number; ejections: number };
  /** Active health checks marked an instance up or down. */
  upstreamHealth: { service: string; instance: string; healthy: boolean };
  /** A route had no usable instance to send to (panic: false). */
  noHealthyUpstream: { service: string };
  /** A hedged request sent another attempt; `won` is reported once a head arrives. */
  hedge: { service: string; route: string; outcome: 'sent' | 'won' | 'lost' };
  /** A mirrored copy of a request was sent, skipped (limit, sampling) or failed. */
  mirror: { service: string; route: string; outcome: 'sent' | 'dropped' | 'failed' };
  /** The adaptive concurrency limit refused a request, or moved. */
  concurrencyLimited: { service: string; limit: number };
  /** A config reload was applied, or refused (the old config keeps serving). */
  reload: { outcome: 'applied' | 'refused'; trigger: 'signal' | 'watch' | 'admin' | 'api'; message?: string };
  /** A proxied WebSocket opened, or closed (how, after how long, how many messages each way). */
  websocket:
    | { route: string; phase: 'open' }
    | { route: string; phase: 'close'; end: string; code: number; durationMs: number; messagesIn: number; messagesOut: number };
}

export type GatewayEventType = keyof GatewayEventMap;
type Listener<K extends GatewayEventType> = (event: GatewayEventMap[K]) => void;

const channels = new Map<string, diagnostics.Channel>();
function channel(type: string): diagnostics.Channel {
  let ch = channels.get(type);
  if (ch === undefined) {
    ch = diagnostics.channel(`rxgate:${type}`);
    channels.set(type, ch);
  }
  return ch;
}

/** One gateway's typed event bus (several gateways in a process keep separate counts). */
export class GatewayEvents {
  private readonly listeners: { [K in GatewayEventType]?: Array<Listener<K>> } = {};

  /** Listens for `type`; returns the function that stops listening. */
  on<K extends GatewayEventType>(type: K, listener: Listener<K>): () => void {
    const list = (this.listeners[type] ??= []) as Array<Listener<K>>;
    list.push(listener);
    return () => {
      const i = list.indexOf(listener);
      if (i >= 0) list.splice(i, 1);
    };
  }

  emit<K extends GatewayEventType>(type: K, event: GatewayEventMap[K]): void {
    const list = this.listeners[type] as Array<Listener<K>> | undefined;
    if (list !== undefined) for (let i = 0; i < list.length; i++) list[i]!(event);
    const ch = channel(type);
    if (ch.hasSubscribers) ch.publish(event);
  }
}
