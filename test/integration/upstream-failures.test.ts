import type { IncomingMessage, ServerResponse } from 'node:http';
import { throwError, VirtualAction, VirtualTimeScheduler } from 'rxjs';
import { virtualRuntime } from '../../lib/runtime.ts';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Gateway, GatewayRoute } from '../../lib/gateway.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service, type ServiceOptions } from '../../lib/upstream/service.ts';
import { header, openSocket, rawRequest, readUntil, readUntilClose, parseResponse } from '../support/http.ts';
import { startRawUpstream } from '../support/raw-http.ts';
import { startGateway, startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function upstreamWith(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestUpstream> {
  const up = await startUpstream(handler);
  cleanups.push(() => up.close());
  return up;
}

async function gatewayFor(options: ServiceOptions, routes?: (service: Service) => GatewayRoute[]): Promise<Gateway & { url: string }> {
  const service = new Service('up', options);
  const gw = await startGateway(routes?.(service) ?? [{ path: '/*', handler: forward(service) }], { services: [service] });
  cleanups.push(() => gw.close());
  return gw;
}

/** Port of a server that was listening and no longer is. */
async function closedPort(): Promise<number> {
  const up = await startUpstream(() => undefined);
  await up.close();
  return up.port;
}

interface ErrorBody {
  error: { code: string; message: string };
}

async function expectErrorResponse(url: string, status: number, code: string, init: Parameters<typeof request>[1] = {}): Promise<ErrorBody & { headers: Record<string, unknown> }> {
  const res = await request(url, init);
  const text = await res.body.text();
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toBe('application/json');
  const body = JSON.parse(text) as ErrorBody;
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message']);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  // No stack traces or source paths in what the client sees.
  expect(text).not.toMatch(/\n\s+at |\.ts:\d+|node_modules|\/work\//);
  return { ...body, headers: res.headers };
}

describe('upstream failures', () => {
  it('answers 502 BAD_GATEWAY with a JSON error when the upstream refuses the connection', async () => {
    const gw = await gatewayFor({ upstreams: [`http://127.0.0.1:${await closedPort()}`] });
    const res = await expectErrorResponse(`${gw.url}/x`, 502, 'BAD_GATEWAY');
    expect(res.headers['x-gateway-response-time']).toMatch(/ms$/);
  });

  it('answers 502 BAD_GATEWAY when the upstream sends garbage instead of HTTP', async () => {
    const raw = await startRawUpstream((socket) => socket.end('this is not http\r\n\r\n'));
    cleanups.push(() => raw.close());
    const gw = await gatewayFor({ upstreams: [raw.url] });
    await expectErrorResponse(`${gw.url}/x`, 502, 'BAD_GATEWAY');
  });

  it('answers 502 BAD_GATEWAY when the upstream closes the connection before answering', async () => {
    const up = await upstreamWith((req) => req.socket.destroy());
    const gw = await gatewayFor({ upstreams: [up.url] });
    await expectErrorResponse(`${gw.url}/x`, 502, 'BAD_GATEWAY');
  });

  it('answers 504 GATEWAY_TIMEOUT when the upstream does not answer within the service timeout', async () => {
    const up = await upstreamWith((req) => req.resume()); // never answers
    const gw = await gatewayFor({ upstreams: [up.url], timeout: '200ms' });
    await expectErrorResponse(`${gw.url}/slow`, 504, 'GATEWAY_TIMEOUT');
  });

  it('answers 503 NO_HEALTHY_UPSTREAM once health checks mark every instance down with panic: false, and recovers', async () => {
    let healthy = false;
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      if (req.url === '/health') {
        res.statusCode = healthy ? 200 : 500;
        res.end(healthy ? 'ok' : 'sick');
      } else res.end('served');
    };
    const a = await upstreamWith(handler);
    const b = await upstreamWith(handler);
    const gw = await gatewayFor({
      upstreams: [a.url, b.url],
      health: { path: '/health', interval: '30ms', unhealthyAfter: 1, healthyAfter: 1 },
      panic: false,
    });
    await vi.waitFor(async () => {
      await expectErrorResponse(`${gw.url}/x`, 503, 'NO_HEALTHY_UPSTREAM');
    }, { timeout: 5_000, interval: 20 });

    healthy = true;
    await vi.waitFor(async () => {
      const res = await request(`${gw.url}/x`);
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('served');
    }, { timeout: 5_000, interval: 20 });
  });

  it('keeps sending traffic to the healthy instance when another is down', async () => {
    const good = await upstreamWith((_req, res) => res.end('good'));
    const bad = await upstreamWith((req, res) => {
      res.statusCode = req.url === '/health' ? 503 : 200;
      res.end('bad');
    });
    const gw = await gatewayFor({
      upstreams: [bad.url, good.url],
      health: { path: '/health', interval: '30ms', unhealthyAfter: 1 },
    });
    // Wait until the bad instance is marked down: then every answer comes from the good one.
    await vi.waitFor(async () => {
      const bodies = [];
      for (let i = 0; i < 4; i++) bodies.push(await (await request(`${gw.url}/x`)).body.text());
      expect(bodies).toEqual(['good', 'good', 'good', 'good']);
    }, { timeout: 5_000, interval: 20 });
  });
});

describe('health probes', () => {
  it('run on the service\'s runtime: once at start, then every interval from a random phase', async () => {
    const up = await upstreamWith((_req, res) => res.end('ok'));
    const scheduler = new VirtualTimeScheduler(VirtualAction, 0);
    const runtime = virtualRuntime(scheduler, { random: () => 0.25 });
    const service = new Service('probed', { upstreams: [up.url], health: { path: '/health', interval: '1s' }, runtime });
    cleanups.push(() => service.close());
    // The probe at start went out in the constructor; count the periodic ones.
    const probe = vi.spyOn(service.upstreams[0]!.checks(), 'request'); // checks have a connection of their own
    // A round skips an instance whose check is running, so each flush waits for the checks' answers (real I/O).
    let results = 0;
    const health = service.upstreams[0]!.health;
    const record = health.record.bind(health);
    health.record = (ok) => { results++; return record(ok); };
    const probesAt = async (frame: number): Promise<number> => {
      await until(() => results === probe.mock.calls.length + 1);
      scheduler.maxFrames = frame;
      scheduler.flush();
      await until(() => results === probe.mock.calls.length + 1);
      return probe.mock.calls.length;
    };
    expect(await probesAt(249)).toBe(0);
    expect(await probesAt(250)).toBe(1); // phase: random() × interval
    expect(await probesAt(1249)).toBe(1);
    expect(await probesAt(1250)).toBe(2);
    expect(await probesAt(2250)).toBe(3);
    expect(await probesAt(3250)).toBe(4);
    await service.close();
    scheduler.maxFrames = 10_000;
    scheduler.flush();
    expect(probe.mock.calls.length).toBe(4);
  });
});

describe('upstream breaks mid-body', () => {
  it('closes the client connection short of content-length when the upstream resets mid-body', async () => {
    const up = await upstreamWith((_req, res) => {
      res.setHeader('content-length', '1000');
      res.write('x'.repeat(100), () => setImmediate(() => res.socket!.destroy()));
    });
    const gw = await gatewayFor({ upstreams: [up.url] });
    const client = await openSocket(gw.url);
    const all = readUntilClose(client);
    client.write('GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
    const res = parseResponse(await all, false, true)!;
    expect(res.status).toBe(200);
    expect(header(res, 'content-length')).toBe('1000');
    expect(res.complete).toBe(false);
    expect(res.body.length).toBeLessThan(1000);
  });

  it('makes an HTTP client fail the body read rather than see a short body as complete', async () => {
    const up = await upstreamWith((_req, res) => {
      res.setHeader('content-length', '1000');
      res.write('x'.repeat(100), () => setImmediate(() => res.socket!.destroy()));
    });
    const gw = await gatewayFor({ upstreams: [up.url] });
    const res = await request(`${gw.url}/x`);
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
  });

  it('never sends the terminating chunk when a chunked upstream resets mid-body', async () => {
    const up = await upstreamWith((_req, res) => {
      res.write('partial', () => setImmediate(() => res.socket!.destroy()));
    });
    const gw = await gatewayFor({ upstreams: [up.url] });
    const client = await openSocket(gw.url);
    const all = readUntilClose(client);
    client.write('GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
    const bytes = await all;
    const res = parseResponse(bytes, false, true)!;
    expect(res.status).toBe(200);
    expect(res.chunked).toBe(true);
    expect(res.complete).toBe(false);
    expect(bytes.toString('latin1')).not.toMatch(/\r\n0\r\n\r\n$/);
    expect(res.body.toString()).toBe('partial');
  });

  it('closes the client connection when the upstream stalls mid-body past the service timeout', async () => {
    const up = await upstreamWith((_req, res) => {
      res.setHeader('content-length', '1000');
      res.write('y'.repeat(10)); // …then silence
    });
    const gw = await gatewayFor({ upstreams: [up.url], timeout: '200ms' });
    const client = await openSocket(gw.url);
    const all = readUntilClose(client);
    client.write('GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
    await readUntil(client, 'yyyyyyyyyy');
    const res = parseResponse(await all, false, true)!;
    expect(res.complete).toBe(false);
    expect(res.body.toString()).toBe('y'.repeat(10));
  });
});

describe('routing errors', () => {
  it('answers 404 ROUTE_NOT_FOUND when no route matches', async () => {
    const up = await upstreamWith((_req, res) => res.end('x'));
    const gw = await gatewayFor({ upstreams: [up.url] }, (s) => [{ path: '/api/*', handler: forward(s) }]);
    await expectErrorResponse(`${gw.url}/other`, 404, 'ROUTE_NOT_FOUND');
  });

  it('answers 405 METHOD_NOT_ALLOWED with Allow when the path matches only for other methods', async () => {
    const up = await upstreamWith((_req, res) => res.end('x'));
    const gw = await gatewayFor({ upstreams: [up.url] }, (s) => [
      { path: '/things', methods: ['GET'], handler: forward(s) },
      { path: '/things', methods: ['POST', 'PUT'], handler: forward(s) },
    ]);
    const res = await expectErrorResponse(`${gw.url}/things`, 405, 'METHOD_NOT_ALLOWED', { method: 'DELETE' });
    expect(String(res.headers.allow).split(', ').sort()).toEqual(['GET', 'HEAD', 'POST', 'PUT']);
  });

  it('answers 400 BAD_REQUEST for malformed percent-encoding in the path', async () => {
    const up = await upstreamWith((_req, res) => res.end('x'));
    const gw = await gatewayFor({ upstreams: [up.url] });
    const res = await rawRequest(gw.url, 'GET /bad%zz/x HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString())).toMatchObject({ error: { code: 'BAD_REQUEST' } });
  });

  it('answers 500 INTERNAL_ERROR without the thrown error\'s message or stack', async () => {
    const service = new Service('unused', { upstreams: ['http://127.0.0.1:1'] });
    const gw = await startGateway([{
      path: '/*',
      handler: () => throwError(() => new Error('secret detail at /work/main/lib/x.ts:12')),
    }], { services: [service] });
    cleanups.push(() => gw.close());
    const body = await expectErrorResponse(`${gw.url}/boom`, 500, 'INTERNAL_ERROR');
    expect(body.error.message).not.toContain('secret');
  });
});
