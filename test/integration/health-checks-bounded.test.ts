import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { CONNECT_PHASE_TIMEOUT } from '../../lib/upstream/probe.ts';
import { Service } from '../../lib/upstream/service.ts';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * Active health checks are bounded (review RC D1/D2): one check per
 * instance at a time, each bounded by health.timeout over its whole life.
 * Before, with a /health that hangs and timeout over interval, a check went
 * out every interval on the checks' one connection and they queued without
 * bound, so closing the service (and SIGTERM) waited for the whole backlog,
 * and a TLS handshake that never ends failed only at connectTimeout.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** An upstream whose /health never answers, counting the checks it holds at once and in all. */
async function hangingHealth(): Promise<{ url: string; seen: () => number; most: () => number }> {
  let open = 0, most = 0, seen = 0;
  const sockets = new Set<Socket>();
  const server: HttpServer = createHttpServer((req: IncomingMessage) => {
    seen++;
    most = Math.max(most, ++open);
    req.socket.once('close', () => open--);
  });
  server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen: () => seen, most: () => most };
}

describe('active health checks against a /health that hangs (interval 100ms, timeout 1s)', () => {
  it('keeps at most one check outstanding per instance and closes the service at once', async () => {
    const up = await hangingHealth();
    const service = new Service('hung', { upstreams: [up.url], health: { path: '/health', interval: '100ms', timeout: '1s' } });
    const u = service.upstreams[0]!;
    let results = 0;
    const record = u.health.record.bind(u.health);
    u.health.record = (ok) => { results++; return record(ok); };
    await until(() => results >= 3, { timeout: 10_000, interval: 20 });
    expect(up.most()).toBe(1);
    // Every check the upstream saw got its result (the one running at most pending): none waits in a queue.
    expect(up.seen() - results).toBeLessThanOrEqual(1);
    expect(u.lastCheck).toMatchObject({ ok: false, status: null, error: 'UND_ERR_HEADERS_TIMEOUT' });
    let closed = false;
    void service.close().then(() => { closed = true; });
    // Before: close() waited for every queued check, a second each (~20 after 3 s).
    await until(() => closed, { timeout: 3_000, interval: 20 });
  }, 20_000);

  it('lets the CLI exit on SIGTERM once the drain ends, not after a backlog of checks', async () => {
    const up = await hangingHealth();
    const runs: RxgateRuns = rxgateRuns();
    cleanups.push(() => runs.remove());
    const file = runs.file(`listen: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
drain: { timeout: 2s }
services:
  hung: { upstreams: ["${up.url}"], health: { path: /health, interval: 100ms, timeout: 1s } }
routes:
  - { path: /*, service: hung }
`);
    const proc = runs.start(['--config', file]);
    await proc.logged('rxgate listening');
    await until(() => up.seen() >= 3, { timeout: 10_000, interval: 20 });
    expect(up.most()).toBe(1);
    let code: number | null | undefined;
    void proc.exited.then((c) => { code = c; });
    proc.proc.kill('SIGTERM');
    // Before: ~10 checks queued per second held the exit for tens of seconds (RC: 155-198 s).
    await until(() => code !== undefined, { timeout: 8_000, interval: 20 });
    expect(code).toBe(0);
  }, 30_000);
});

describe('a check to an https instance that never finishes the handshake', () => {
  it('fails at health.timeout, not at connectTimeout, and the next check goes out', async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((s) => { sockets.add(s); s.on('error', () => {}); }); // accepts, never speaks TLS
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); silent.close(() => r()); }));
    const service = new Service('silent', {
      upstreams: [`https://127.0.0.1:${(silent.address() as AddressInfo).port}`],
      connectTimeout: '30s',
      health: { path: '/health', interval: '200ms', timeout: '300ms', unhealthyAfter: 1 },
    });
    cleanups.push(() => service.close());
    const u = service.upstreams[0]!;
    await until(() => u.lastCheck !== null, { timeout: 10_000, interval: 20 });
    const first = u.lastCheck!;
    expect(first).toMatchObject({ ok: false, status: null, error: CONNECT_PHASE_TIMEOUT });
    expect(u.health.healthy).toBe(false);
    // The timed-out check's connection was dropped: the next one is not stuck behind it until connectTimeout.
    await until(() => u.lastCheck !== first, { timeout: 10_000, interval: 20 });
    expect(u.lastCheck).toMatchObject({ ok: false, error: CONNECT_PHASE_TIMEOUT });
  }, 30_000);
});

describe('instances discovery puts in place of every old one', () => {
  it('are checked at once, not at the next round', async () => {
    const ok = createHttpServer((_req, res) => res.end('ok'));
    const sick = createHttpServer((_req, res) => { res.statusCode = 500; res.end('sick'); });
    for (const s of [ok, sick]) {
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); }));
    }
    const url = (s: HttpServer): string => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const service = new Service('replaced', { upstreams: [url(ok)], health: { path: '/health', interval: '1h', unhealthyAfter: 1 } });
    cleanups.push(() => service.close());
    await until(() => service.upstreams[0]!.lastCheck !== null);
    service.setUpstreams([url(sick)]); // no kept instance: the new one starts in rotation
    const fresh = service.upstreams[0]!;
    expect(fresh.url).toBe(url(sick));
    // Before: first checked at the next round, an hour away, taking traffic meanwhile.
    await until(() => fresh.lastCheck !== null, { timeout: 3_000 });
    expect(fresh.lastCheck).toMatchObject({ ok: false, status: 500 });
    expect(service.inRotation(fresh)).toBe(false);
  });
});
