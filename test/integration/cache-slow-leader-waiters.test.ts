import type { ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import pino from 'pino';
import { VirtualTimeScheduler } from 'rxjs';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { virtualRuntime } from '../../lib/runtime.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * Review RD's D1 (session 12), the principled fix: a coalesced miss's leader
 * copied the upstream body into the entry at the pace its own client read
 * it, so one slow client leading a popular key held every waiter until they
 * lapsed at the route's `timeouts.total` and each went upstream itself. Now
 * the upstream is read at its own pace while the body may be stored
 * (≤ `maxEntrySize`), the entry is stored and the waiters answered when the
 * upstream ends, and the slow client is fed from what was read, as nginx's
 * `proxy_buffering` with its cache lock does. RD's reproduction: an 8 MiB
 * body the upstream sends at once, a leader that reads its head and then
 * nothing, a waiter joining after the head. Nothing here depends on a
 * duration: the waiter's answer is checked against what the leader's client
 * has read when it comes.
 */

const SIZE = 8 * 1024 * 1024;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function setup() {
  let requests = 0;
  const access: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: accessLines(access) });
  const up = await startUpstream((_req, res) => {
    requests++;
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(SIZE) });
    res.end(Buffer.alloc(SIZE, 97)); // all at once: the upstream is fast
  });
  cleanups.push(() => up.close());
  // total: 30s, so that before the fix the waiter was answered only at its lapse, by a request of its own.
  const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /*, service: api, cache: { ttl: 60s, maxEntrySize: 16777216 }, timeouts: { total: 30s } }
`, defaultPipeline, process.env, { logger });
  cleanups.push(() => gw.close());
  return { gw, port: Number(new URL(gw.url).port), requests: () => requests, access };
}

/** A log stream keeping the access lines: the access log writes the lines of one tick in one write. */
function accessLines(access: Array<Record<string, unknown>>): (text: string) => void {
  return (text) => {
    for (const l of text.split('\n')) {
      if (l === '') continue;
      const line = JSON.parse(l) as Record<string, unknown>;
      if (line.msg === 'access') access.push(line);
    }
  };
}

/** A client that sends its GET and reads nothing after its first bytes until `resume`; `received`: bytes so far. */
function slowClient(port: number, path: string) {
  const socket: Socket = connect(port, '127.0.0.1');
  cleanups.push(() => void socket.destroy());
  let received = 0;
  let head = '';
  socket.on('data', (d: Buffer) => {
    if (head === '') {
      head = d.toString('latin1', 0, Math.min(d.length, 200));
      socket.pause();
    }
    received += d.length;
  });
  socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`);
  return { socket, head: () => head, received: () => received };
}

describe('a coalesced miss led by a client that reads slowly (review RD, D1)', () => {
  it('answers its waiter from the entry once the upstream has sent the body, while the leading client has not read it, with one upstream request', async () => {
    const { gw, port, requests, access } = await setup();
    const leader = slowClient(port, '/big');
    await vi.waitFor(() => expect(leader.head().slice(0, 15)).toBe('HTTP/1.1 200 OK'), { timeout: 10_000 });
    const waiter = await request(`${gw.url}/big`);
    const body = await waiter.body.arrayBuffer();
    const readByLeader = leader.received();
    // Before: the waiter was held until its lapse at total, then fetched the body itself (MISS, two upstream requests).
    expect([waiter.statusCode, waiter.headers['x-cache'], body.byteLength, requests()]).toEqual([200, 'HIT', SIZE, 1]);
    expect(readByLeader).toBeLessThan(SIZE);
    // The leader's exchange is not over while its client reads: only the waiter's access line so far.
    expect(access.map((l) => l['cache'])).toEqual(['HIT']);
    // The leading client then gets the whole body at its own pace, and its line says so.
    leader.socket.resume();
    await vi.waitFor(() => expect(leader.received()).toBeGreaterThan(SIZE), { timeout: 20_000 });
    await vi.waitFor(() => expect(access.map((l) => [l['cache'], l['bytesOut']])).toEqual([['HIT', SIZE], ['MISS', SIZE]]));
    const after = await request(`${gw.url}/big`);
    expect([after.headers['x-cache'], (await after.body.arrayBuffer()).byteLength, requests()]).toEqual(['HIT', SIZE, 1]);
  }, 60_000);

  it('reads on for its waiter when the leading client goes away before the body ends, and answers the waiter from the entry (nginx reads on what it caches)', async () => {
    const held: ServerResponse[] = [];
    const up = await startUpstream((_req, res) => { held.push(res); });
    cleanups.push(() => up.close());
    const scheduler = new VirtualTimeScheduler(); // the waiter's bound on this clock says it joined; the clock never moves
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /*, service: api, cache: { ttl: 60s }, timeouts: { total: 600ms } }
`, defaultPipeline, process.env, { runtime: virtualRuntime(scheduler), metrics });
    cleanups.push(() => gw.close());
    const leader = slowClient(Number(new URL(gw.url).port), '/left');
    await vi.waitFor(() => expect(held).toHaveLength(1));
    held[0]!.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
    held[0]!.write('first ');
    await vi.waitFor(() => expect(leader.head().slice(0, 15)).toBe('HTTP/1.1 200 OK'));
    let answer: { status: number; cache: unknown; body: string } | null = null;
    void request(`${gw.url}/left`).then(async (r) => { answer = { status: r.statusCode, cache: r.headers['x-cache'], body: await r.body.text() }; });
    await vi.waitFor(() => expect(scheduler.actions.map((a) => a.delay)).toContain(600)); // joined: its bound is on the clock
    leader.socket.destroy();
    await vi.waitFor(async () => expect((await metrics.clientAborts.get()).values[0]?.value).toBe(1));
    // Before: the leader's exchange was cancelled with its client, and the waiter sent a request of its own.
    held[0]!.end('second');
    await vi.waitFor(() => expect(answer !== null || held.length > 1).toBe(true));
    if (held.length > 1) held[1]!.writeHead(200).end('its own');
    expect([answer, held.length]).toEqual([{ status: 200, cache: 'HIT', body: 'first second' }, 1]);
  });

  it('writes a waiter\'s access line once its whole body is handed over, however slowly its client reads it (the flaky first case)', async () => {
    const BIG = 24 * 1024 * 1024; // more than loopback's socket buffers take for a client that reads nothing
    const held: ServerResponse[] = [];
    const up = await startUpstream((_req, res) => { held.push(res); });
    cleanups.push(() => up.close());
    const access: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: accessLines(access) });
    const scheduler = new VirtualTimeScheduler(); // the waiter's bound on this clock says it joined; the clock never moves
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /*, service: api, cache: { ttl: 60s, maxEntrySize: 33554432 }, timeouts: { total: 600ms } }
`, defaultPipeline, process.env, { runtime: virtualRuntime(scheduler), logger });
    cleanups.push(() => gw.close());
    const leading = request(`${gw.url}/many`).then(async (r) => (await r.body.arrayBuffer()).byteLength);
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const waiter = slowClient(Number(new URL(gw.url).port), '/many');
    await vi.waitFor(() => expect(scheduler.actions.map((a) => a.delay)).toContain(600)); // joined
    held[0]!.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(BIG) });
    for (let i = 0; i < 24; i++) held[0]!.write(Buffer.alloc(1024 * 1024, 97)); // the entry: the copy's many chunks
    held[0]!.end();
    expect(await leading).toBe(BIG);
    await vi.waitFor(() => expect(waiter.head().slice(0, 15)).toBe('HTTP/1.1 200 OK'), { timeout: 10_000 });
    // Before: the waiter's line came with its answer (at the latest with the leader's), its bytesOut what its writer had taken by then.
    await vi.waitFor(() => expect(access.map((l) => l['cache'])).toContain('MISS'), { timeout: 10_000 });
    expect(access.map((l) => [l['cache'], l['bytesOut']])).toEqual([['MISS', BIG]]);
    waiter.socket.resume();
    await vi.waitFor(() => expect(waiter.received()).toBeGreaterThan(BIG), { timeout: 20_000 });
    await vi.waitFor(() => expect(access.map((l) => [l['cache'], l['bytesOut']])).toEqual([['MISS', BIG], ['HIT', BIG]]), { timeout: 10_000 });
  }, 60_000);
});
