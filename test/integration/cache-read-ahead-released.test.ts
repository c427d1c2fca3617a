import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { defaultPipeline } from '../../pipeline.ts';
import { readAhead } from '../../lib/stages/cache/read-ahead.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * Review RL, H1: the bytes a stored miss reads ahead of a slow client count in
 * `readAhead.used` (the gauge rxgate_cache_read_ahead_bytes) until they are
 * written or the tee is destroyed, and nothing destroyed a response body when
 * its client went away. Every client that left with chunks queued kept them
 * counted, and once that reached `cache.maxReadAhead` read-ahead was off for
 * the life of the process. Since afb844c the exchange destroys its response
 * body on an abort. Each path RL listed is here: the client pauses after its
 * head, the gateway reads ahead for it, the client leaves, and the count must
 * come back to 0. Nothing depends on a duration: each step waits on a condition.
 */

const SIZE = 8 * 1024 * 1024;
const MiB = 1024 * 1024;

/** sized/chunked: the whole body at once; held: all but 64 KiB, then nothing; broken: half its length, then a FIN. */
type Upstream = 'sized' | 'chunked' | 'held' | 'broken';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
  readAhead.used = 0; // a leak in one case is not counted against the next
});

async function setup(kind: Upstream, { maxEntrySize = 32 * MiB, top = '' } = {}) {
  const st = { requests: 0, closed: 0, finished: [] as string[] };
  const up = await startUpstream((_req, res) => {
    st.requests++;
    res.socket!.on('close', () => { st.closed++; });
    const body = Buffer.alloc(SIZE, 97);
    if (kind === 'chunked') {
      res.writeHead(200, { 'cache-control': 'max-age=60' });
      res.end(body);
    } else if (kind === 'broken') {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(2 * SIZE) });
      res.write(body, () => res.socket!.end());
    } else {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(SIZE) });
      if (kind === 'sized') res.end(body);
      else res.write(body.subarray(64 * 1024));
    }
  });
  cleanups.push(() => up.close());
  const gw = await startGatewayFromYaml(`${top}
services:
  api: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false }
routes:
  - { path: /*, service: api, cache: { ttl: 60s, maxEntrySize: ${maxEntrySize} } }
`, defaultPipeline);
  cleanups.push(() => gw.close());
  gw.observe({ onFinish: (req) => { st.finished.push(req.path); } });
  return { st, gw };
}

/** A client that reads the head of its response, then nothing: the leader of its URL's miss once it has its head. */
async function slowClient(gw: { url: string }, path = '/big'): Promise<Socket> {
  const socket: Socket = connect(Number(new URL(gw.url).port), '127.0.0.1');
  cleanups.push(() => void socket.destroy());
  let head = false;
  socket.once('data', () => { socket.pause(); head = true; });
  socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
  await vi.waitFor(() => expect(head).toBe(true), { timeout: 10_000 });
  return socket;
}

/**
 * Another request for the URL, read whole. It waits for the leader's miss and is answered once the leader's upstream
 * has ended (or the copy was dropped: then it asks the upstream itself), however little the leader's client read.
 */
async function readWhole(gw: { url: string }, path = '/big'): Promise<number> {
  let got = -1;
  void fetch(gw.url + path).then((res) => res.arrayBuffer()).then((b) => { got = b.byteLength; });
  await vi.waitFor(() => expect(got).toBe(SIZE), { timeout: 10_000 });
  return got;
}

describe('the read-ahead a client leaves behind is given back (review RL, H1)', () => {
  for (const kind of ['sized', 'chunked'] as const) {
    it(`releases it when the client leaves after the upstream ended (${kind} body)`, async () => {
      const { gw } = await setup(kind);
      const client = await slowClient(gw);
      expect(await readWhole(gw)).toBe(SIZE); // the leader's upstream has ended: its miss is over, the client's body is not
      expect(readAhead.used).toBeGreaterThan(0);
      client.destroy();
      // Before afb844c: held for good (4.2 MB in RL's probe).
      await vi.waitFor(() => expect(readAhead.used).toBe(0), { timeout: 10_000 });
    }, 30_000);
  }

  it('releases it when the client leaves while the upstream still sends', async () => {
    const { st, gw } = await setup('held');
    const client = await slowClient(gw);
    await vi.waitFor(() => expect(readAhead.used).toBeGreaterThan(0), { timeout: 10_000 });
    client.destroy();
    // Before: 1.2 MB kept; the upstream request is cancelled either way.
    await vi.waitFor(() => expect([readAhead.used, st.closed]).toEqual([0, 1]), { timeout: 10_000 });
  }, 30_000);

  it('releases it when the client leaves without reading after the upstream broke off', async () => {
    const { st, gw } = await setup('broken');
    const client = await slowClient(gw);
    await vi.waitFor(() => expect(st.closed === 1 && readAhead.used > 0).toBe(true), { timeout: 10_000 });
    client.destroy();
    await vi.waitFor(() => expect(readAhead.used).toBe(0), { timeout: 10_000 });
  }, 30_000);

  it('releases it when the client leaves after its body passed maxEntrySize (the copy dropped, streamed on)', async () => {
    const { st, gw } = await setup('chunked', { maxEntrySize: 6 * MiB });
    const client = await slowClient(gw);
    await vi.waitFor(() => expect(readAhead.used).toBeGreaterThan(0), { timeout: 10_000 });
    // A second request waits for the leader's entry until the copy is dropped, then goes to the upstream itself.
    expect(await readWhole(gw)).toBe(SIZE);
    expect(st.requests).toBe(2);
    expect(readAhead.used).toBeGreaterThan(0); // read ahead before the copy passed 6 MiB
    client.destroy();
    await vi.waitFor(() => expect(readAhead.used).toBe(0), { timeout: 10_000 });
  }, 30_000);

  it('gives every later slow leader read-ahead after clients that left had held more than maxReadAhead between them', async () => {
    const max = SIZE + MiB;
    const { st, gw } = await setup('sized', { top: `cache: { maxReadAhead: ${max} }` });
    const refused = readAhead.refused;
    let heldByLeavers = 0;
    for (let i = 0; heldByLeavers <= max; i++) {
      const before = readAhead.used;
      const client = await slowClient(gw, `/a${i}`);
      // Read to its end while its client reads nothing. Before afb844c the leavers' bytes stayed counted, so a later
      // leader was refused read-ahead (RL: at once) and its upstream waited for its client: this wait failed.
      expect(await readWhole(gw, `/a${i}`)).toBe(SIZE);
      heldByLeavers += readAhead.used - before;
      client.destroy();
      await vi.waitFor(() => expect(st.finished.filter((p) => p === `/a${i}`)).toHaveLength(2), { timeout: 10_000 });
    }
    await slowClient(gw, '/b');
    expect(await readWhole(gw, '/b')).toBe(SIZE);
    expect(readAhead.refused - refused).toBe(0);
  }, 60_000);
});
