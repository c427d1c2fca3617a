import type { Subscription } from 'rxjs';
import type { WebSocket as ClientSocket } from 'uWebSockets.js';
import type WebSocket from 'ws';
import { after, type Runtime } from '../runtime.ts';
import type { WebSocketLimits } from './websocket-options.ts';
import { closeUpstream, forClient, sendable, shortReason } from './ws-close.ts';
import type { ClientData, LinkEnd, LinkSummary, Pausable } from './ws-types.ts';

export type { ClientData, LinkEnd, LinkSummary };

/**
 * One proxied WebSocket: the client's uWS socket and the upstream's `ws`
 * socket, relaying frames both ways unchanged, with backpressure (a side
 * whose buffer passes `highWaterMark` stops the gateway reading from the
 * other; past `maxBuffered`, or paused longer than `stallTimeout`, it is a
 * slow consumer: closed with 1008, the other side with 1013), close codes
 * and reasons passed on (an abrupt close becomes 1001 upstream, 1011 to the
 * client), the upstream's pings relayed to the client and its pongs back,
 * and an idle limit.
 */
export class WsLink {
  private client: ClientSocket<ClientData> | null = null;
  private done = false;
  private upstreamPaused = true;
  private clientPaused = false;
  private stall: Subscription | null = null;
  private idle: Subscription | null = null;
  private lastActivity: number;
  private readonly openedAt: number;
  private messagesIn = 0;
  private messagesOut = 0;
  /** The upstream closed before the client's socket opened: close it as soon as it does. */
  private pendingClose: { code: number; reason: string } | null = null;
  /** The upstream sent a message over maxMessageSize: the client gets 1009, as for one of its own. */
  private upstreamTooBig = false;

  /**
   * @param upstream an open `ws` socket, paused (nothing is read until the client's socket opens)
   * @param accepted from the upstream's `101`: its subprotocol ('' for none), headers for the client's (`Set-Cookie`…)
   */
  constructor(
    readonly upstream: WebSocket,
    private readonly limits: WebSocketLimits,
    private readonly runtime: Runtime,
    private readonly onEnd: (summary: LinkSummary) => void,
    readonly accepted: { readonly protocol: string; readonly headers: readonly string[] } = { protocol: upstream.protocol, headers: [] },
  ) {
    this.openedAt = this.lastActivity = runtime.now();
    upstream.on('message', (data, isBinary) => this.fromUpstream(data as Buffer, isBinary));
    upstream.on('close', (code, reason) => this.upstreamClosed(code, reason.toString()));
    // Relayed, not answered here (ws-connect.ts turns ws's autoPong off): an upstream's heartbeat sees whether the client answers.
    // Held to maxBuffered as a message is (review RK): a flood of pings to a client that does not read queued without bound.
    upstream.on('ping', (data) => { this.touch(); const c = this.client; if (this.done || c === null) return; if (c.getBufferedAmount() > limits.maxBuffered) this.slowClient(); else c.ping(data); });
    // A stage that drops the 101 (a hedge's loser, a timeout's race) never hands the link to the edge: close it.
    this.idle = after(runtime, limits.connectTimeoutMs, () => {
      if (this.client === null) this.abort();
    });
    upstream.on('pong', () => this.touch());
    // A 'close' always follows an 'error'. ws ends an upstream message over maxPayload with an error and no close frame read.
    upstream.on('error', (err: Error & { code?: string }) => { this.upstreamTooBig ||= err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'; });
  }

  /** The subprotocol the upstream chose ('' when none). */
  get protocol(): string {
    return this.accepted.protocol;
  }

  /** The client's upgrade never completed (it went away first): close the upstream. */
  abort(): void {
    if (this.done) return;
    closeUpstream(this.upstream, 1001, 'client went away');
    this.finish('aborted', 1006);
  }

  /** The gateway is going down: both sides get 1001 Going Away (RFC 6455 §7.4.1), not a dropped connection. */
  goingAway(): void {
    if (this.done) return;
    closeUpstream(this.upstream, 1001, 'going away');
    this.endClient(1001, 'going away', 'shutdown');
  }

  // ---- uWS behavior callbacks ----
  opened(client: ClientSocket<ClientData>): void {
    this.client = client;
    this.idle?.unsubscribe();
    this.idle = null;
    if (this.pendingClose !== null) {
      const { code, reason } = this.pendingClose;
      client.end(code, reason);
      return;
    }
    this.armIdle();
    this.resumeUpstream();
  }

  fromClient(data: ArrayBuffer, isBinary: boolean): void {
    if (this.done) return;
    if (data.byteLength > this.limits.maxMessageSize) {
      closeUpstream(this.upstream, 1001, 'client sent a message too big');
      this.endClient(1009, 'message too big', 'too-big');
      return;
    }
    this.lastActivity = this.runtime.now();
    this.messagesIn++;
    const upstream = this.upstream;
    if (upstream.bufferedAmount > this.limits.maxBuffered) return this.slowUpstream();
    // uWS takes the ArrayBuffer back when this callback returns: copy it.
    upstream.send(Buffer.from(new Uint8Array(data)), { binary: isBinary }, () => this.upstreamDrained());
    if (upstream.bufferedAmount > this.limits.highWaterMark) this.pauseClient();
  }

  /** A control frame (ping or pong) from either side: the connection is alive, if not chatty. */
  touch(): void {
    this.lastActivity = this.runtime.now();
  }

  /** The client's pong (to the upstream's ping, relayed; or unsolicited, which RFC 6455 5.5.3 allows) goes upstream. */
  clientPong(data: ArrayBuffer): void {
    this.touch();
    if (this.done) return;
    // Held to maxBuffered as a message is: a flood of pongs to an upstream that does not read queued without bound.
    if (this.upstream.bufferedAmount > this.limits.maxBuffered) this.slowUpstream();
    else this.upstream.pong(Buffer.from(new Uint8Array(data)));
  }

  clientDrained(): void {
    const client = this.client;
    if (this.done || client === null || !this.upstreamPaused) return;
    if (client.getBufferedAmount() <= this.limits.highWaterMark) this.resumeUpstream();
  }

  clientClosed(code: number, message: ArrayBuffer): void {
    this.client = null;
    if (this.done) return;
    if (sendable(code)) closeUpstream(this.upstream, code, shortReason(Buffer.from(message).toString()));
    else if (code === 1005) closeUpstream(this.upstream, null, '');
    else closeUpstream(this.upstream, 1001, 'client went away');
    this.finish('client', code);
  }

  // ---- the upstream's events ----
  private fromUpstream(data: Buffer, isBinary: boolean): void {
    const client = this.client;
    if (this.done || client === null) return;
    this.lastActivity = this.runtime.now();
    this.messagesOut++;
    // Pausing stops reading, but what was already read still arrives: up to one message past the mark.
    if (client.getBufferedAmount() > this.limits.maxBuffered) return this.slowClient();
    client.send(data, isBinary);
    if (client.getBufferedAmount() > this.limits.highWaterMark) this.pauseUpstream();
  }

  private upstreamClosed(code: number, reason: string): void {
    if (this.done) return;
    const out = forClient(code, reason, this.upstreamTooBig);
    if (this.client === null) {
      this.pendingClose = out;
      return;
    }
    this.endClient(out.code, out.reason, this.upstreamTooBig ? 'too-big' : 'upstream', code);
  }

  // ---- backpressure ----
  private pauseUpstream(): void {
    if (this.upstreamPaused) return;
    this.upstreamPaused = true;
    this.upstream.pause();
    this.armStall(() => this.slowClient());
  }

  private resumeUpstream(): void {
    if (!this.upstreamPaused) return;
    this.upstreamPaused = false;
    this.disarmStall();
    this.upstream.resume();
  }

  private pauseClient(): void {
    const client = this.client as (ClientSocket<ClientData> & Pausable) | null;
    // Without pause (uWS 20.30), maxBuffered alone bounds what waits for the upstream.
    if (this.clientPaused || client === null || client.pause === undefined) return;
    this.clientPaused = true;
    client.pause();
    this.armStall(() => this.slowUpstream());
  }

  private upstreamDrained(): void {
    if (!this.clientPaused || this.done || this.upstream.bufferedAmount > this.limits.highWaterMark) return;
    this.clientPaused = false;
    this.disarmStall();
    (this.client as (ClientSocket<ClientData> & Pausable) | null)?.resume?.();
  }

  /** A slow consumer: the client (1008; the upstream 1013) or the upstream (1008; the client 1013). */
  private slowClient(): void {
    closeUpstream(this.upstream, 1013, 'client too slow');
    this.endClient(1008, 'slow consumer', 'slow-client');
  }
  private slowUpstream(): void {
    closeUpstream(this.upstream, 1008, 'slow consumer');
    this.endClient(1013, 'upstream too slow', 'slow-upstream');
  }

  private armStall(onStall: () => void): void {
    if (this.stall !== null || this.limits.stallTimeoutMs === 0) return;
    this.stall = after(this.runtime, this.limits.stallTimeoutMs, () => {
      this.stall = null;
      if (!this.done) onStall();
    });
  }

  private disarmStall(): void {
    if (this.upstreamPaused || this.clientPaused) return;
    this.stall?.unsubscribe();
    this.stall = null;
  }

  private armIdle(): void {
    const idleMs = this.limits.idleTimeoutMs;
    if (idleMs === 0) return;
    const check = (): void => {
      if (this.done) return;
      const quiet = this.runtime.now() - this.lastActivity;
      if (quiet < idleMs) {
        this.idle = after(this.runtime, idleMs - quiet, check);
        return;
      }
      closeUpstream(this.upstream, 1001, 'idle timeout');
      this.endClient(1001, 'idle timeout', 'idle');
    };
    this.idle = after(this.runtime, idleMs, check);
  }

  // ---- closing ----
  private endClient(code: number, reason: string, end: LinkEnd, upstreamCode = code): void {
    const client = this.client;
    this.finish(end, upstreamCode);
    this.client = null;
    // uWS calls `close` from inside `end`, and `finish` made it a no-op.
    client?.end(code, reason);
  }

  private finish(end: LinkEnd, code: number): void {
    if (this.done) return;
    this.done = true;
    this.stall?.unsubscribe();
    this.idle?.unsubscribe();
    this.onEnd({ end, code, durationMs: this.runtime.now() - this.openedAt, messagesIn: this.messagesIn, messagesOut: this.messagesOut });
  }
}
