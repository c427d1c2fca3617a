import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { openSocket, parseResponse, readUntil, readUntilClose } from '../support/http.ts';
import { startGateway, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * The service's `timeout` on the upstream head and body gaps, which the
 * upstream exchange enforces on its service's deadline list (undici's own
 * headersTimeout and bodyTimeout are off): real undici, real upstreams.
 */
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An upstream that counts the connections it was given and those that closed. */
async function upstreamWith(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestUpstream & { opened: number; closed: number }> {
  const up = Object.assign(await startUpstream(handler), { opened: 0, closed: 0 });
  up.server.on('connection', (s: Socket) => {
    up.opened++;
    s.on('close', () => up.closed++);
  });
  cleanups.push(() => up.close());
  return up;
}

async function gatewayFor(up: TestUpstream, timeout: string): Promise<{ gw: Gateway & { url: string }; service: Service }> {
  const service = new Service('up', { upstreams: [up.url], timeout });
  const gw = await startGateway([{ path: '/*', handler: forward(service) }], { services: [service] });
  cleanups.push(() => gw.close());
  return { gw, service };
}

describe('the service timeout on the upstream exchange', () => {
  it('answers 504 GATEWAY_TIMEOUT "upstream timed out" when no head comes within it, destroys that connection and opens a new one for the next request', async () => {
    let answer = false;
    const up = await upstreamWith((req, res) => {
      if (answer) res.end('ok');
      else req.resume(); // never answers
    });
    const { gw, service } = await gatewayFor(up, '150ms');
    const res = await request(`${gw.url}/slow`);
    expect(res.statusCode).toBe(504);
    expect(await res.body.json()).toEqual({ error: { code: 'GATEWAY_TIMEOUT', message: 'upstream timed out' } });
    expect(service.deadlines!.size).toBe(0);
    await vi.waitFor(() => expect(up.closed).toBe(1), { timeout: 5_000, interval: 10 });
    answer = true;
    const next = await request(`${gw.url}/next`);
    expect(await next.body.text()).toBe('ok');
    expect(up.opened).toBe(2);
    expect(service.deadlines!.size).toBe(0);
  });

  it('closes the client connection mid-body when the upstream stalls past it, and destroys the upstream connection', async () => {
    const up = await upstreamWith((_req, res) => {
      res.setHeader('content-length', '1000');
      res.write('y'.repeat(10)); // …then silence
    });
    const { gw, service } = await gatewayFor(up, '150ms');
    const client = await openSocket(gw.url);
    const all = readUntilClose(client);
    client.write('GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
    await readUntil(client, 'yyyyyyyyyy');
    const res = parseResponse(await all, false, true)!;
    expect(res.status).toBe(200);
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe('y'.repeat(10));
    await vi.waitFor(() => expect(up.closed).toBe(1), { timeout: 5_000, interval: 10 });
    expect(service.deadlines!.size).toBe(0);
  });

  it('leaves no entry on the list when the client goes away while the head is awaited', async () => {
    let waiting = 0;
    const up = await upstreamWith((req) => {
      waiting++;
      req.resume(); // never answers
    });
    const { gw, service } = await gatewayFor(up, '30s');
    const client = await openSocket(gw.url);
    client.write('GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
    await vi.waitFor(() => expect(waiting).toBe(1), { timeout: 5_000, interval: 10 });
    expect(service.deadlines!.size).toBe(1);
    client.destroy();
    await vi.waitFor(() => expect(service.deadlines!.size).toBe(0), { timeout: 5_000, interval: 10 });
    await vi.waitFor(() => expect(up.closed).toBe(1), { timeout: 5_000, interval: 10 });
  });

  it('does not cut a body whose chunks keep coming, however long it takes in all', async () => {
    const up = await upstreamWith((_req, res) => {
      let n = 0;
      const tick = setInterval(() => {
        res.write(`${n}\n`);
        if (++n === 30) {
          clearInterval(tick);
          res.end();
        }
      }, 40);
    });
    // 30 chunks 40 ms apart take twice the 600 ms timeout in all; the margin
    // per gap is wide because a stalled test process fires the gateway's
    // timer in the same turn as the upstream's next write.
    const { gw, service } = await gatewayFor(up, '600ms');
    const res = await request(`${gw.url}/trickle`);
    expect(await res.body.text()).toBe(Array.from({ length: 30 }, (_, i) => `${i}\n`).join(''));
    expect(service.deadlines!.size).toBe(0);
  });
});
