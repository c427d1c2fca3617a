import type { ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * Server-Sent Events through a real gateway: events arrive one at a time,
 * a quiet stream outlives the service timeout, nothing is cached, and a
 * client that leaves aborts the upstream at once.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An SSE upstream: each stream is handed to `serve` after its head. */
async function sseUpstream(serve: (res: ServerResponse) => void): Promise<TestUpstream & { hits: number }> {
  let counted: { hits: number } | null = null;
  const up = await startUpstream((req, res) => {
    req.resume();
    counted!.hits++;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'max-age=60' });
    res.flushHeaders();
    serve(res);
  });
  cleanups.push(() => up.close());
  const out = Object.assign(up, { hits: 0 });
  counted = out;
  return out;
}

async function gateway(up: TestUpstream, route = ''): Promise<string> {
  const gw = await startGatewayFromYaml(`
services:
  events: { upstreams: ["${up.url}"], timeout: 1s }
routes:
  - path: /events/*
    service: events
    ${route}
`);
  cleanups.push(() => gw.close());
  return gw.url;
}

/** Opens an SSE request and reads it chunk by chunk. */
async function open(url: string): Promise<{ status: number; headers: Record<string, unknown>; next(): Promise<string | null>; destroy(): void }> {
  const res = await request(url, { headers: { accept: 'text/event-stream' }, bodyTimeout: 10_000 });
  const it = res.body[Symbol.asyncIterator]();
  return {
    status: res.statusCode,
    headers: res.headers,
    next: async () => {
      const r = await it.next();
      return r.done === true ? null : Buffer.from(r.value as Uint8Array).toString();
    },
    destroy: () => res.body.destroy(),
  };
}

describe('Server-Sent Events', () => {
  it('delivers each event before the upstream sends the next', async () => {
    let send!: (s: string) => void;
    const up = await sseUpstream((res) => {
      send = (s) => res.write(s);
      send('data: 1\n\n');
    });
    const stream = await open(`${await gateway(up)}/events/live`);
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream');
    expect(await stream.next()).toBe('data: 1\n\n');
    send(': heartbeat\n\n');
    expect(await stream.next()).toBe(': heartbeat\n\n');
    send('data: 2\n\n');
    expect(await stream.next()).toBe('data: 2\n\n');
    stream.destroy();
  });

  it('keeps a stream that is quiet for longer than the service timeout', async () => {
    const up = await sseUpstream((res) => {
      res.write('data: before\n\n');
      // 2.5 s of silence against a 1 s service timeout.
      setTimeout(() => res.end('data: after\n\n'), 2500);
    });
    const stream = await open(`${await gateway(up)}/events/quiet`);
    let body = '';
    for (let chunk = await stream.next(); chunk !== null; chunk = await stream.next()) body += chunk;
    expect(body).toBe('data: before\n\ndata: after\n\n');
  });

  it('cuts a quiet stream after the route\'s streamIdleTimeout', async () => {
    const up = await sseUpstream((res) => {
      res.write('data: before\n\n');
      setTimeout(() => res.end('data: after\n\n'), 2500);
    });
    const stream = await open(`${await gateway(up, 'streamIdleTimeout: 300ms')}/events/quiet`);
    expect(await stream.next()).toBe('data: before\n\n');
    await expect((async () => { while ((await stream.next()) !== null); })()).rejects.toThrow();
  });

  it('never caches an event stream, even on a cached route with max-age', async () => {
    const up = await sseUpstream((res) => res.end('data: once\n\n'));
    const url = `${await gateway(up, 'cache: { ttl: 30s }')}/events/cached`;
    for (let i = 0; i < 2; i++) {
      const res = await request(url);
      expect(await res.body.text()).toBe('data: once\n\n');
    }
    expect(up.hits).toBe(2);
  });

  it('aborts the upstream as soon as the client goes away', async () => {
    let upstreamClosed!: Promise<void>;
    const up = await sseUpstream((res) => {
      upstreamClosed = new Promise((resolve) => res.on('close', () => resolve()));
      res.write('data: 1\n\n');
    });
    const stream = await open(`${await gateway(up)}/events/leave`);
    expect(await stream.next()).toBe('data: 1\n\n');
    stream.destroy();
    await upstreamClosed;
  });
});

describe('ordinary responses', () => {
  it('are still cut when their body is quiet for longer than the service timeout', async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part');
      setTimeout(() => res.end('rest'), 2500);
    });
    cleanups.push(() => up.close());
    const res = await request(`${await gateway(up)}/events/plain`);
    await expect(res.body.text()).rejects.toThrow();
  });
});
