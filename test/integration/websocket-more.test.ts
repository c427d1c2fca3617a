import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { startGatewayFromYaml } from '../support/servers.ts';
import { get } from '../support/answer.ts';
import { closed, connect, echo, startWsUpstream, wsUrl, type WsUpstream } from '../support/ws.ts';

/** WebSocket routes: control frames, fragments, a slow upstream, handshake timeouts, stickiness, metrics. */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function upstream(...args: Parameters<typeof startWsUpstream>): Promise<WsUpstream> {
  const up = await startWsUpstream(...args);
  cleanups.push(() => up.close());
  return up;
}

async function gateway(yaml: string): Promise<{ url: string; ws: string }> {
  // These tests read the public /__rxgate/metrics (opt-in).
  const gw = await startGatewayFromYaml(`metrics: { public: true }\n${yaml}`);
  cleanups.push(() => gw.close());
  return { url: gw.url, ws: wsUrl(gw.url) };
}

const oneRoute = (url: string, route = 'websocket: true'): string => `
services:
  chat: { upstreams: ["${url}"], timeout: 2s }
routes:
  - path: /chat/*
    service: chat
    ${route}
`;

async function client(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = await connect(url, [], headers);
  cleanups.push(() => ws.terminate());
  return ws;
}

describe('control frames and fragments', () => {
  it('answers pings on each side', async () => {
    let upstreamSide!: WebSocket;
    const gw = await gateway(oneRoute((await upstream((ws) => { upstreamSide = ws; })).url));
    const ws = await client(`${gw.ws}/chat/a`);
    const clientPong = new Promise<string>((resolve) => ws.once('pong', (d) => resolve(d.toString())));
    ws.ping('from client');
    expect(await clientPong).toBe('from client');
    const upstreamPong = new Promise<string>((resolve) => upstreamSide.once('pong', (d) => resolve(d.toString())));
    upstreamSide.ping('from upstream');
    expect(await upstreamPong).toBe('from upstream');
  });

  it('reassembles a fragmented message and passes it on whole', async () => {
    const gw = await gateway(oneRoute((await upstream(echo)).url));
    const ws = await client(`${gw.ws}/chat/a`);
    const got = new Promise<{ data: string; binary: boolean }>((resolve) => ws.once('message', (d, b) => resolve({ data: (d as Buffer).toString(), binary: b })));
    ws.send('hel', { fin: false });
    ws.send('lo ', { fin: false });
    ws.send('world', { fin: true });
    expect(await got).toEqual({ data: 'hello world', binary: false });
  });
});

describe('routes without websocket', () => {
  it('answer an upgrade as plain HTTP, as before', async () => {
    const gw = await gateway(oneRoute((await upstream(echo)).url, 'retry: false'));
    const err = (await connect(`${gw.ws}/chat/a`).catch((e: unknown) => e)) as { status: number; body: string };
    expect(err.status).toBe(200);
    expect(err.body).toBe('plain');
  });
});

describe('the pipeline on connect', () => {
  it('rate-limits upgrades: past the limit 429, and the upstream never sees the refused one', async () => {
    const up = await upstream(echo);
    const gw = await gateway(oneRoute(up.url, 'websocket: true\n    rateLimit: { limit: 1, window: 1m, key: ip }'));
    await client(`${gw.ws}/chat/a`);
    const err = (await connect(`${gw.ws}/chat/b`).catch((e: unknown) => e)) as { status: number };
    expect(err.status).toBe(429);
    expect(up.attempts).toBe(1);
  });
});

describe('idle timeout', () => {
  it('counts pings as activity', async () => {
    let upstreamSide!: WebSocket;
    const gw = await gateway(oneRoute((await upstream((ws) => { upstreamSide = ws; })).url, 'websocket: { idleTimeout: 400ms }'));
    const ws = await client(`${gw.ws}/chat/a`);
    let closedEarly = false;
    ws.once('close', () => { closedEarly = true; });
    // Pings every 100 ms for 1 s, well past the 400 ms idle limit.
    for (let i = 0; i < 10; i++) {
      ws.ping();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(closedEarly).toBe(false);
    expect(upstreamSide.readyState).toBe(upstreamSide.OPEN);
  });
});

describe('limits on the upstream side', () => {
  it('closes the client with 1013 when the upstream stops reading and maxBuffered fills', async () => {
    let upstreamClose!: Promise<{ code: number; reason: string }>;
    const up = await upstream((ws) => {
      upstreamClose = closed(ws);
      // The upstream reads nothing.
      (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    });
    const gw = await gateway(oneRoute(up.url, 'websocket: { highWaterMark: 262144, maxBuffered: 1048576 }'));
    const ws = await client(`${gw.ws}/chat/a`);
    const c = closed(ws);
    const chunk = Buffer.alloc(64 * 1024, 1);
    let offered = 0;
    while (ws.readyState === ws.OPEN && offered < 256 * 1024 * 1024) {
      ws.send(chunk);
      offered += chunk.length;
      if (offered % (1024 * 1024) === 0) await new Promise((r) => setImmediate(r));
    }
    expect(await c).toEqual({ code: 1013, reason: 'upstream too slow' });
    expect(offered).toBeLessThan(256 * 1024 * 1024);
    void upstreamClose;
  });

  it('answers 504 when the upstream accepts the connection but never answers the upgrade', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => { sockets.add(s); });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); silent.close(() => r()); }));
    const port = (silent.address() as AddressInfo).port;
    const gw = await gateway(oneRoute(`http://127.0.0.1:${port}`, 'websocket: { connectTimeout: 300ms }\n    retry: false'));
    const err = (await connect(`${gw.ws}/chat/a`).catch((e: unknown) => e)) as { status: number; body: string };
    expect(err.status).toBe(504);
    expect(JSON.parse(err.body).error.code).toBe('GATEWAY_TIMEOUT');
  });
});

describe('balancing and metrics', () => {
  it('keeps a user on one instance with the hash balancer, per connection', async () => {
    const a = await upstream(echo);
    const b = await upstream(echo);
    const gw = await gateway(`
services:
  chat: { upstreams: ["${a.url}", "${b.url}"], balancer: hash, hash: { header: x-user } }
routes:
  - { path: /chat/*, service: chat, websocket: true }
`);
    for (let i = 0; i < 4; i++) {
      const ws = await client(`${gw.ws}/chat/a`, { 'x-user': 'alice' });
      ws.close();
      await closed(ws);
    }
    expect([a.handshakes.length, b.handshakes.length].sort()).toEqual([0, 4]);
  });

  it('counts connections, closes and messages in the metrics', async () => {
    const gw = await gateway(oneRoute((await upstream(echo)).url, 'name: chat\n    websocket: true'));
    const ws = await client(`${gw.ws}/chat/a`);
    const echoed = new Promise((r) => ws.once('message', r));
    ws.send('hi');
    await echoed;
    const open = await get(`${gw.url}/__rxgate/metrics`);
    expect(open.body).toContain('rxgate_websocket_connections{route="chat"} 1');
    ws.close(1000);
    await closed(ws);
    const after = await get(`${gw.url}/__rxgate/metrics`);
    expect(after.body).toContain('rxgate_websocket_connections{route="chat"} 0');
    expect(after.body).toContain('rxgate_websocket_closed_total{route="chat",end="client"} 1');
    expect(after.body).toContain('rxgate_websocket_messages_total{route="chat",direction="in"} 1');
    expect(after.body).toContain('rxgate_websocket_messages_total{route="chat",direction="out"} 1');
  });
});
