import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { Pool } from 'undici';
// @ts-expect-error: a plain .mjs bench tool without types
import { counts } from '../../bench/memory/pool-probe.mjs';

// What docs/cache-memory.md ("Upstream connections on the full miss") read with the probe
// under the bench's load, on a pool set up as lib/upstream/upstream.ts sets up its own.
describe('the pool probe (bench/memory/pool-probe.mjs)', () => {
  let server: Server | null = null;
  let pool: Pool | null = null;
  const held: ServerResponse[] = [];
  afterEach(async () => {
    for (const res of held.splice(0)) res.destroy();
    await pool?.destroy();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  let accepted = 0;
  async function start(): Promise<string> {
    accepted = 0;
    server = createServer((req, res) => {
      if (req.url === '/hold') { held.push(res); return; }
      res.end('{"ok":true}');
    });
    server.on('connection', () => { accepted++; });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

  it('counts two searches per request and one connection for keep-alive requests a turn apart', async () => {
    const origin = await start();
    pool = new Pool(origin, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 });
    const at = { ...counts };
    for (let i = 0; i < 3; i++) {
      const r = await pool.request({ path: '/', method: 'GET' });
      await r.body.text();
      await turn();
    }
    // undici's PoolBase searches again after each dispatch (is the pool still free?): two walks per request.
    expect(counts.dispatches - at.dispatches).toBe(6);
    // The second search of the first request finds its one client busy and adds another, which
    // connects only when a request is given to it: 2 clients, 1 connection.
    expect(counts.created - at.created).toBe(2);
    expect(accepted).toBe(1);
  });

  it('adds a client for a request sent in the turn the previous response ended (undici frees a client a turn later)', async () => {
    const origin = await start();
    pool = new Pool(origin, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 });
    const at = { ...counts };
    const first = await pool.request({ path: '/', method: 'GET' });
    await first.body.text();
    const second = await pool.request({ path: '/', method: 'GET' });
    await second.body.text();
    // The second request goes to the client the first one's second search added (the first is still
    // waiting for its turn), and its own second search adds a third.
    expect(counts.created - at.created).toBe(3);
    expect(accepted).toBe(2);
  });

  it('counts a new connection after a request aborted before its response, none closed by the upstream', async () => {
    const origin = await start();
    pool = new Pool(origin, { connections: 128, pipelining: 1, keepAliveTimeout: 4000 });
    const at = { ...counts };
    const r0 = await pool.request({ path: '/', method: 'GET' });
    await r0.body.text();
    await turn();
    const ac = new AbortController();
    const held$ = pool.request({ path: '/hold', method: 'GET', signal: ac.signal });
    await once(server!, 'request');
    const gone = once(pool, 'disconnect');
    ac.abort();
    await expect(held$).rejects.toThrow();
    const [, , err] = await gone;
    // Aborted before its response ended, the request takes its connection with it (pipelining 1:
    // nothing else can be read from that socket); the upstream did not close it.
    expect((err as { code?: string }).code).toBe('UND_ERR_INFO');
    await turn();
    const r = await pool.request({ path: '/', method: 'GET' });
    await r.body.text();
    expect(accepted).toBe(2);
    expect(counts.created - at.created).toBe(2);
  });
});
