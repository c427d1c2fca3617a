import { randomBytes } from 'node:crypto';
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { startGatewayFromYaml } from '../support/servers.ts';
import { errorBody, get } from '../support/answer.ts';
import { closed, connect, echo, startWsUpstream, wsUrl, type WsUpstream } from '../support/ws.ts';

/**
 * WebSocket routes through a real gateway built from YAML, against a real
 * `ws` upstream on loopback: frames, close codes, subprotocols, the
 * pipeline before the upgrade, refusals, limits and backpressure.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function upstream(...args: Parameters<typeof startWsUpstream>): Promise<WsUpstream> {
  const up = await startWsUpstream(...args);
  cleanups.push(() => up.close());
  return up;
}

async function gateway(up: WsUpstream, route = 'websocket: true', extra = ''): Promise<{ url: string; ws: string }> {
  const gw = await startGatewayFromYaml(`
${extra}
services:
  chat: { upstreams: ["${up.url}"], timeout: 2s }
routes:
  - path: /chat/*
    service: chat
    ${route}
`);
  cleanups.push(() => gw.close());
  return { url: gw.url, ws: wsUrl(gw.url) };
}

async function client(url: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = await connect(url, protocols, headers);
  cleanups.push(() => ws.terminate());
  return ws;
}

describe('frames through a websocket route', () => {
  it('echoes 10,000 mixed text and binary messages in order', async () => {
    const gw = await gateway(await upstream(echo));
    const ws = await client(`${gw.ws}/chat/room`);
    const n = 10_000;
    const got: Array<{ data: string; binary: boolean }> = [];
    const all = new Promise<void>((resolve) => ws.on('message', (data, isBinary) => {
      got.push({ data: (data as Buffer).toString(), binary: isBinary });
      if (got.length === n) resolve();
    }));
    for (let i = 0; i < n; i++) ws.send(i % 3 === 0 ? Buffer.from(`b${i}`) : `t${i}`, { binary: i % 3 === 0 });
    await all;
    got.forEach((m, i) => expect(m).toEqual(i % 3 === 0 ? { data: `b${i}`, binary: true } : { data: `t${i}`, binary: false }));
  });

  it('carries 1 MiB binary messages both ways unchanged', async () => {
    const gw = await gateway(await upstream(echo));
    const ws = await client(`${gw.ws}/chat/big`);
    const sent = [randomBytes(1024 * 1024), randomBytes(1024 * 1024), randomBytes(1024 * 1024)];
    const got: Buffer[] = [];
    const all = new Promise<void>((resolve) => ws.on('message', (data) => {
      got.push(data as Buffer);
      if (got.length === sent.length) resolve();
    }));
    for (const b of sent) ws.send(b);
    await all;
    got.forEach((b, i) => expect(b.equals(sent[i]!)).toBe(true));
  });

  it('keeps plain HTTP requests on the same route working', async () => {
    const gw = await gateway(await upstream(echo));
    const res = await get(`${gw.url}/chat/room`);
    expect(res.status).toBe(200);
    expect(res.body).toBe('plain');
  });
});

describe('closing', () => {
  it('passes the client close code and reason to the upstream', async () => {
    let upstreamClose!: Promise<{ code: number; reason: string }>;
    const gw = await gateway(await upstream((ws) => { upstreamClose = closed(ws); }));
    const ws = await client(`${gw.ws}/chat/a`);
    ws.close(4001, 'bye from client');
    await closed(ws);
    expect(await upstreamClose).toEqual({ code: 4001, reason: 'bye from client' });
  });

  it('passes the upstream close code and reason to the client', async () => {
    const gw = await gateway(await upstream((ws) => ws.on('message', () => ws.close(4002, 'bye from upstream'))));
    const ws = await client(`${gw.ws}/chat/a`);
    const c = closed(ws);
    ws.send('close please');
    expect(await c).toEqual({ code: 4002, reason: 'bye from upstream' });
  });

  it('closes the client with 1011 when the upstream drops the connection', async () => {
    const gw = await gateway(await upstream((ws) => ws.on('message', () => ws.terminate())));
    const ws = await client(`${gw.ws}/chat/a`);
    const c = closed(ws);
    ws.send('drop');
    expect((await c).code).toBe(1011);
  });

  it('closes the upstream with 1001 when the client drops the connection', async () => {
    let upstreamClose!: Promise<{ code: number; reason: string }>;
    const gw = await gateway(await upstream((ws) => { upstreamClose = closed(ws); }));
    const ws = await client(`${gw.ws}/chat/a`);
    ws.terminate();
    expect((await upstreamClose).code).toBe(1001);
  });
});

describe('the handshake', () => {
  it('offers every subprotocol upstream and gives the client the one the upstream chose, with X-Forwarded-* and X-Request-Id', async () => {
    const up = await upstream(echo, { handleProtocols: (p) => (p.has('v2.chat') ? 'v2.chat' : false) });
    const gw = await gateway(up);
    const ws = await client(`${gw.ws}/chat/p?x=1`, ['v1.chat', 'v2.chat', 'v3.chat'], { 'x-request-id': 'req-42', 'x-tenant': 't1' });
    expect(ws.protocol).toBe('v2.chat');
    const h = up.handshakes[0]!;
    expect(h.headers['sec-websocket-protocol']!.split(',').map((p) => p.trim())).toEqual(['v1.chat', 'v2.chat', 'v3.chat']);
    expect(h.url).toBe('/chat/p?x=1');
    expect(h.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(h.headers['x-forwarded-proto']).toBe('http');
    expect(h.headers['x-forwarded-host']).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(h.headers['x-request-id']).toBe('req-42');
    expect(h.headers['x-tenant']).toBe('t1');
  });

  it('answers 401 to an upgrade without a token and never contacts the upstream', async () => {
    const up = await upstream(echo);
    const gw = await gateway(up, 'websocket: true\n    auth: { mode: required, secret: "integration-secret-at-least-32-bytes-long!" }');
    const err = await connect(`${gw.ws}/chat/a`).catch((e: { status: number; body: string }) => e);
    expect((err as { status: number }).status).toBe(401);
    expect(errorBody({ status: 401, headers: {}, body: (err as { body: string }).body }).code).toBe('UNAUTHORIZED');
    expect(up.attempts).toBe(0);
  });

  it("answers with the upstream's own answer when it refuses the upgrade, once", async () => {
    const up = await upstream(echo, { refuse: 403 });
    const gw = await gateway(up);
    const err = (await connect(`${gw.ws}/chat/a`).catch((e: unknown) => e)) as { status: number; body: string };
    expect([err.status, err.body]).toEqual([403, '']);
    expect(up.attempts).toBe(1);
  });

  it("answers 503 past the route's maxConnections", async () => {
    const gw = await gateway(await upstream(echo), 'websocket: { maxConnections: 1 }');
    await client(`${gw.ws}/chat/a`);
    const err = (await connect(`${gw.ws}/chat/b`).catch((e: unknown) => e)) as { status: number };
    expect(err.status).toBe(503);
  });
});

describe('limits', () => {
  it('closes with 1009 a client message over maxMessageSize', async () => {
    const gw = await gateway(await upstream(echo), 'websocket: { maxMessageSize: 1024 }');
    const ws = await client(`${gw.ws}/chat/a`);
    const c = closed(ws);
    ws.send(Buffer.alloc(2048));
    expect((await c).code).toBe(1009);
  });

  it('closes both sides with 1001 after idleTimeout without messages', async () => {
    let upstreamClose!: Promise<{ code: number; reason: string }>;
    const gw = await gateway(await upstream((ws) => { upstreamClose = closed(ws); }), 'websocket: { idleTimeout: 300ms }');
    const ws = await client(`${gw.ws}/chat/a`);
    expect(await closed(ws)).toEqual({ code: 1001, reason: 'idle timeout' });
    expect((await upstreamClose).code).toBe(1001);
  });

  it('stops reading a fast upstream while the client does not read, and closes it as a slow consumer after stallTimeout', async () => {
    const chunk = Buffer.alloc(64 * 1024, 7);
    let upstreamSocket!: WebSocket;
    let upstreamClose!: Promise<{ code: number; reason: string }>;
    const up = await upstream((ws) => {
      upstreamSocket = ws;
      upstreamClose = closed(ws);
    });
    const gw = await gateway(up, 'websocket: { highWaterMark: 262144, maxBuffered: 1048576, stallTimeout: 1s }');
    const ws = await client(`${gw.ws}/chat/slow`);
    // The client reads nothing from here on.
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    // Offer the gateway 64 MiB as fast as the upstream can write; it must stop taking it.
    let offered = 0;
    while (offered < 64 * 1024 * 1024 && upstreamSocket.readyState === upstreamSocket.OPEN && upstreamSocket.bufferedAmount < 16 * 1024 * 1024) {
      upstreamSocket.send(chunk);
      offered += chunk.length;
      if (offered % (1024 * 1024) === 0) await new Promise((r) => setImmediate(r));
    }
    // The gateway paused its read of the upstream: what the upstream could not hand over waits on the upstream's side.
    expect(upstreamSocket.bufferedAmount).toBeGreaterThanOrEqual(16 * 1024 * 1024 - chunk.length);
    expect(offered).toBeLessThan(64 * 1024 * 1024);
    expect(await upstreamClose).toEqual({ code: 1013, reason: 'client too slow' });
  });
});
