import { EventEmitter } from 'node:events';
import { VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { virtualRuntime } from '../../lib/runtime.ts';
import { websocketLimits } from '../../lib/server/websocket-options.ts';
import { WsLink, type LinkSummary } from '../../lib/server/ws-link.ts';

/** WsLink's rules on virtual time, with a fake upstream `ws` and a fake uWS client. */

class FakeUpstream extends EventEmitter {
  readonly CLOSING = 2;
  readonly CLOSED = 3;
  readyState = 1;
  protocol = '';
  bufferedAmount = 0;
  paused = false;
  sent: Buffer[] = [];
  closedWith: [number | undefined, string | undefined] | null = null;
  pause(): void { this.paused = true; }
  resume(): void { this.paused = false; }
  send(data: Buffer): void { this.sent.push(data); }
  /** Counted as queued, as ws counts a frame the socket has not taken yet. */
  pong(data: Buffer): void { this.pongs.push(data); this.bufferedAmount += data.length + 6; }
  pongs: Buffer[] = [];
  close(code?: number, reason?: string): void {
    this.readyState = this.CLOSING;
    this.closedWith = [code, reason];
  }
}

class FakeClient {
  buffered = 0;
  sent: Buffer[] = [];
  ended: [number, string] | null = null;
  constructor(private readonly link: () => WsLink) {}
  send(data: Buffer): number { this.sent.push(data); this.buffered += data.length; return 1; }
  pings: Buffer[] = [];
  ping(data: Buffer): number { this.pings.push(data); this.buffered += data.length + 2; return 1; }
  getBufferedAmount(): number { return this.buffered; }
  // uWS calls `close` from inside `end`.
  end(code: number, reason: string): void {
    this.ended = [code, reason];
    this.link().clientClosed(code, new TextEncoder().encode(reason).buffer);
  }
}

function setup(options: Parameters<typeof websocketLimits>[0] = true) {
  const vts = new VirtualTimeScheduler(undefined, 0);
  const runtime = virtualRuntime(vts);
  const upstream = new FakeUpstream();
  upstream.paused = true;
  const ends: LinkSummary[] = [];
  const link = new WsLink(upstream as never, websocketLimits(options), runtime, (s) => ends.push(s));
  const client = new FakeClient(() => link);
  const advanceTo = (ms: number): void => {
    vts.maxFrames = ms;
    vts.flush();
    // The clock stands at the last action run: move it on to `ms`.
    vts.frame = Math.max(vts.frame, ms);
  };
  return { link, upstream, client, ends, advanceTo, open: () => link.opened(client as never) };
}

describe('WsLink', () => {
  it('reads nothing from the upstream until the client socket is open', () => {
    const { upstream, open } = setup();
    expect(upstream.paused).toBe(true);
    open();
    expect(upstream.paused).toBe(false);
  });

  it('pauses the upstream past highWaterMark and resumes it when the client drains', () => {
    const { link, upstream, client, open } = setup({ highWaterMark: 4096, maxBuffered: 65536 });
    open();
    upstream.emit('message', Buffer.alloc(5000), true);
    expect(upstream.paused).toBe(true);
    client.buffered = 1000;
    link.clientDrained();
    expect(upstream.paused).toBe(false);
  });

  it('closes a client that stays over highWaterMark for stallTimeout: 1008 to it, 1013 upstream', () => {
    const { upstream, client, ends, advanceTo, open } = setup({ highWaterMark: 4096, maxBuffered: 65536, stallTimeout: 1000 });
    open();
    upstream.emit('message', Buffer.alloc(5000), true);
    advanceTo(999);
    expect(client.ended).toBe(null);
    advanceTo(1000);
    expect(client.ended).toEqual([1008, 'slow consumer']);
    expect(upstream.closedWith).toEqual([1013, 'client too slow']);
    expect(ends.map((e) => e.end)).toEqual(['slow-client']);
  });

  it('closes a client whose buffer passed maxBuffered at the next upstream message', () => {
    const { upstream, client, open } = setup({ highWaterMark: 4096, maxBuffered: 8192, stallTimeout: false });
    open();
    upstream.emit('message', Buffer.alloc(9000), true);
    expect(client.ended).toBe(null);
    upstream.emit('message', Buffer.alloc(10), true);
    expect(client.ended).toEqual([1008, 'slow consumer']);
    expect(client.sent).toHaveLength(1);
  });

  it('closes an upstream that does not drain past maxBuffered: 1008 to it, 1013 to the client', () => {
    const { link, upstream, client, open } = setup({ highWaterMark: 4096, maxBuffered: 8192 });
    open();
    upstream.bufferedAmount = 9000;
    link.fromClient(new ArrayBuffer(10), true);
    expect(upstream.closedWith).toEqual([1008, 'slow consumer']);
    expect(client.ended).toEqual([1013, 'upstream too slow']);
  });

  it('closes both sides with 1001 after idleTimeout without messages, re-arming on activity', () => {
    const { link, upstream, client, advanceTo, open } = setup({ idleTimeout: 1000 });
    open();
    advanceTo(600);
    link.fromClient(new ArrayBuffer(1), false);
    advanceTo(1000);
    expect(client.ended).toBe(null);
    advanceTo(1600);
    expect(client.ended).toEqual([1001, 'idle timeout']);
    expect(upstream.closedWith).toEqual([1001, 'idle timeout']);
  });

  it('closes the upstream if no client socket opens within connectTimeout', () => {
    const { upstream, ends, advanceTo } = setup({ connectTimeout: 500 });
    advanceTo(500);
    expect(upstream.closedWith).toEqual([1001, 'client went away']);
    expect(ends.map((e) => e.end)).toEqual(['aborted']);
  });

  it('maps an abrupt upstream close to 1011 and an abrupt client close to 1001', () => {
    const a = setup();
    a.open();
    a.upstream.emit('close', 1006, Buffer.alloc(0));
    expect(a.client.ended).toEqual([1011, 'upstream went away']);
    const b = setup();
    b.open();
    b.link.clientClosed(1006, new ArrayBuffer(0));
    expect(b.upstream.closedWith).toEqual([1001, 'client went away']);
  });

  it('passes close codes and reasons both ways, and reports the link once', () => {
    const a = setup();
    a.open();
    a.upstream.emit('close', 4000, Buffer.from('bye'));
    expect(a.client.ended).toEqual([4000, 'bye']);
    expect(a.ends).toHaveLength(1);
    const b = setup();
    b.open();
    b.link.clientClosed(4001, new TextEncoder().encode('later').buffer);
    b.upstream.emit('close', 4001, Buffer.from('later'));
    expect(b.upstream.closedWith).toEqual([4001, 'later']);
    expect(b.ends).toHaveLength(1);
  });

  it('closes both sides with 1001 Going Away when the gateway goes down, and reports it as a shutdown once', () => {
    const a = setup();
    a.open();
    a.link.goingAway();
    expect([a.client.ended, a.upstream.closedWith]).toEqual([[1001, 'going away'], [1001, 'going away']]);
    a.link.goingAway();
    expect(a.ends.map((e) => [e.end, e.code])).toEqual([['shutdown', 1001]]);
  });

  it('closes the client with 1009 when ws refused an upstream message over maxMessageSize', () => {
    const a = setup();
    a.open();
    a.upstream.emit('error', Object.assign(new RangeError('Max payload size exceeded'), { code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' }));
    a.upstream.emit('close', 1006, Buffer.alloc(0));
    expect(a.client.ended).toEqual([1009, 'message too big']);
    expect(a.ends.map((e) => e.end)).toEqual(['too-big']);
  });

  it("relays the upstream's ping to the client and the client's pong (solicited or not) upstream, payload as sent", () => {
    const { link, upstream, client, open } = setup();
    open();
    upstream.emit('ping', Buffer.alloc(125, 1));
    link.clientPong(new Uint8Array(125).fill(1).buffer);
    link.clientPong(new TextEncoder().encode('unsolicited').buffer);
    expect([client.pings.map((p) => p.length), upstream.pongs.map((p) => p.length)]).toEqual([[125], [125, 11]]);
  });

  it("closes a client whose pongs pile up past maxBuffered towards an upstream that does not read: 1013 to it, 1008 upstream (review RK)", () => {
    const { link, upstream, client, ends, open } = setup({ highWaterMark: 4096, maxBuffered: 65536 });
    open();
    const pong = new Uint8Array(125).buffer;
    // Before: all 100,000 (13 MB) queued, the link open, as a flood of pongs through rxgate grew its RSS by 1.3 GB.
    for (let i = 0; i < 100_000 && ends.length === 0; i++) link.clientPong(pong);
    expect(upstream.bufferedAmount).toBeLessThanOrEqual(65536 + 131);
    expect([client.ended, upstream.closedWith, ends.map((e) => e.end)]).toEqual([[1013, 'upstream too slow'], [1008, 'slow consumer'], ['slow-upstream']]);
  });

  it("closes a client that does not read past maxBuffered when the upstream's pings pile up towards it: 1008 to it, 1013 upstream (review RK)", () => {
    const { upstream, client, ends, open } = setup({ highWaterMark: 4096, maxBuffered: 65536 });
    open();
    for (let i = 0; i < 100_000 && ends.length === 0; i++) upstream.emit('ping', Buffer.alloc(125));
    expect(client.buffered).toBeLessThanOrEqual(65536 + 127);
    expect([client.ended, upstream.closedWith, ends.map((e) => e.end)]).toEqual([[1008, 'slow consumer'], [1013, 'client too slow'], ['slow-client']]);
  });
});
