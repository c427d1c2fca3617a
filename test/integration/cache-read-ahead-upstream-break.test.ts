import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * Review RG, M1: a stored miss reads the upstream ahead of a slow client
 * (tee.ts). When the upstream broke off mid-body, the client's exchange
 * failed at once and the chunks read ahead for it were lost with the
 * connection: RG's probe got 4.1 of the 8 MiB the upstream sent (before the
 * read-ahead, all 8). Now those chunks are written first, then the
 * connection is closed (never passed off as whole). Nothing here depends on
 * a duration: the client resumes once the upstream's connection is closed.
 */

const SENT = 8 * 1024 * 1024;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('a stored miss whose upstream breaks off while its client is slow (review RG, M1)', () => {
  it('gives the slow client every byte the upstream sent before it broke off, then closes the connection', async () => {
    let upstreamClosed = false;
    const up = await startUpstream((_req, res) => {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(2 * SENT) });
      res.write(Buffer.alloc(SENT, 97), () => res.socket!.end()); // a FIN half-way through its length
      res.socket!.on('close', () => { upstreamClosed = true; });
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /*, service: api, cache: { ttl: 60s, maxEntrySize: 33554432 } }
`, defaultPipeline);
    cleanups.push(() => gw.close());
    const socket: Socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
    cleanups.push(() => void socket.destroy());
    const chunks: Buffer[] = [];
    let closed = false;
    socket.on('data', (d: Buffer) => {
      if (chunks.length === 0) socket.pause(); // reads its head, then nothing until the upstream has broken off
      chunks.push(d);
    });
    socket.on('close', () => { closed = true; });
    socket.write(`GET /big HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
    await vi.waitFor(() => expect(chunks.length).toBeGreaterThan(0), { timeout: 10_000 });
    // The gateway read the 8 MiB and then the FIN: undici failed the body and closed its connection.
    await vi.waitFor(() => expect(upstreamClosed).toBe(true), { timeout: 10_000 });
    await new Promise((r) => setImmediate(r));
    socket.resume();
    await vi.waitFor(() => expect(closed).toBe(true), { timeout: 20_000 });
    const all = Buffer.concat(chunks);
    const head = all.indexOf('\r\n\r\n') + 4;
    expect(all.toString('latin1', 0, 15)).toBe('HTTP/1.1 200 OK');
    // Before: 4.1 MiB or so, the rest was queued for the client when the error came.
    expect(all.length - head).toBe(SENT);
  }, 60_000);
});
