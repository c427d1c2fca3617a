import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startGatewayFromYaml } from '../support/servers.ts';

// A request whose Connection asks to close, and every request during a drain, is dispatched on a later turn
// (edge.ts: `closing`). What that turn must not change: the head limits judged on the request's own head,
// and a drain that waits for it. Review RA4 (session 8) of bbb720e.

interface Conn { s: Socket; out: () => string; closed: Promise<void> }

const stops: Array<() => unknown> = [];
afterEach(async () => { for (const stop of stops.splice(0).reverse()) await stop(); });

async function upstream(onRequest: (s: Socket, text: string) => void): Promise<number> {
  const up: Server = createServer((s) => { s.on('error', () => {}); s.on('data', (d) => onRequest(s, d.toString('latin1'))); });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  stops.push(() => new Promise((r) => up.close(r)));
  return (up.address() as { port: number }).port;
}

function open(port: number): Promise<Conn> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    s.on('data', (d) => { buf += d.toString('latin1'); });
    s.on('error', () => {});
    const closed = new Promise<void>((r) => s.on('close', () => r()));
    s.on('connect', () => resolve({ s, out: () => buf, closed }));
    stops.push(() => s.destroy());
  });
}

const statusOf = (text: string): string => text.split('\r\n')[0]!;
const bounded = (p: Promise<void>, ms: number): Promise<unknown> => Promise.race([p, new Promise((r) => setTimeout(r, ms))]);
const ok = (s: Socket): void => { s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'); };

async function gateway(upPort: number, extra = ''): Promise<{ port: number; drain: (ms: number) => Promise<boolean> }> {
  const gw = await startGatewayFromYaml(`
listen: { host: 127.0.0.1, port: 0 }
${extra}
services: { up: { upstreams: ["http://127.0.0.1:${upPort}"], retry: false, circuitBreaker: false } }
routes:
  - { path: /p/*, service: up }
`);
  stops.push(() => gw.close());
  return { port: Number(new URL(gw.url).port), drain: (ms) => gw.drain(ms) };
}

describe('a request answered on a later turn', () => {
  const many = Array.from({ length: 20 }, (_, i) => `X-H${i}: v\r\n`).join('');

  it('is judged by the header limits on its own head, not the head read after it', async () => {
    const { port } = await gateway(await upstream((s) => ok(s)), 'limits: { maxHeaders: 10 }');
    for (const [closeHeads, otherHeads, want] of [['', many, ['200', '431']], [many, '', ['431', '200']]] as const) {
      const a = await open(port);
      const b = await open(port);
      // In one turn of the gateway's loop: the close request, then another connection's head.
      a.s.write(`GET /p/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${closeHeads}\r\n`);
      b.s.write(`GET /p/b HTTP/1.1\r\nHost: x\r\n${otherHeads}\r\n`);
      await bounded(a.closed, 5000);
      while (!b.out().includes('\r\n\r\n')) await new Promise((r) => setTimeout(r, 10));
      expect([statusOf(a.out()), statusOf(b.out())].map((l) => l.split(' ')[1])).toEqual(want);
    }
  });

  it('is waited for by a drain that began before it was dispatched', async () => {
    let held: Socket | null = null;
    const upPort = await upstream((s, text) => { if (text.startsWith('GET /p/hold')) held = s; else ok(s); });
    const gw = await gateway(upPort);
    const c1 = await open(gw.port);
    const c2 = await open(gw.port);
    c2.s.write('GET /p/warm HTTP/1.1\r\nHost: x\r\n\r\n');
    c1.s.write('GET /p/hold HTTP/1.1\r\nHost: x\r\n\r\n');
    while (held === null || !c2.out().includes('ok')) await new Promise((r) => setTimeout(r, 10));
    const before = c2.out().length;
    const drained = gw.drain(5000);
    await new Promise((r) => setTimeout(r, 50));
    // Same tick: the keep-alive client's next request, then the answer that ends the last request in flight.
    c2.s.write('GET /p/next HTTP/1.1\r\nHost: x\r\n\r\n');
    ok(held!);
    await drained;
    await bounded(c2.closed, 5000);
    expect(statusOf(c1.out())).toBe('HTTP/1.1 200 OK');
    const next = c2.out().slice(before);
    expect(statusOf(next)).toBe('HTTP/1.1 200 OK');
    expect(next.toLowerCase()).toContain('\r\nconnection: close\r\n');
  });

  it('refuses a Host with no name before its port, as an empty one', async () => {
    let forwarded = 0;
    const { port } = await gateway(await upstream((s) => { forwarded++; ok(s); }));
    const c = await open(port);
    c.s.write('GET /p/x HTTP/1.1\r\nHost: :80\r\n\r\n');
    await bounded(c.closed, 5000);
    expect(statusOf(c.out())).toBe('HTTP/1.1 400 Bad Request');
    expect(forwarded).toBe(0);
  });
});
