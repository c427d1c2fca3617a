import type { ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { firstValueFrom, of } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { isGatewayError } from '../../lib/errors.ts';
import { rateLimit } from '../../lib/stages/rate-limit/rate-limit.ts';
import { gcraRule } from '../../lib/stages/rate-limit/gcra.ts';
import { RedisRateLimitStore, type RateLimitLogger } from '../../lib/stages/rate-limit/redis-store.ts';
import { createRedisClient, redisReady, type RedisClient } from '../../lib/resources/redis-client.ts';
import type { GatewayRequest, GatewayResponse } from '../../lib/types.ts';
import { freePort } from '../support/global-setup.ts';
import { startRedisServer, stopRedisServer } from '../support/redis-server.ts';
import { redisUrl } from '../support/redis.ts';
import { gatewayRequest } from '../support/request.ts';

const OK: GatewayResponse = { status: 200, headers: [], body: null };
const url = redisUrl();

function request(ip = '10.0.0.1'): GatewayRequest {
  return gatewayRequest({ id: 'r', remoteAddress: ip });
}

function quietLogger() {
  return { warn: vi.fn<RateLimitLogger['warn']>(), info: vi.fn<RateLimitLogger['info']>() };
}

async function outcome(obs: ReturnType<ReturnType<ReturnType<typeof rateLimit>>>): Promise<number> {
  return firstValueFrom(obs).then((r) => r.status, (e: unknown) => (isGatewayError(e) ? e.status : -1));
}

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanup.length > 0) await cleanup.pop()!();
});

async function client(target: string): Promise<RedisClient> {
  const c = createRedisClient(target, { commandTimeout: '1s' });
  cleanup.push(() => c.disconnect());
  await redisReady(c);
  return c;
}

/** A redis-server of this test's own, so killing it leaves the shared one alone. */
async function ownRedis(port: number): Promise<ChildProcess> {
  const proc = await startRedisServer(port);
  cleanup.push(() => stopRedisServer(proc, 'SIGKILL'));
  return proc;
}

/**
 * Speaks just enough RESP to get an ioredis client ready (CLIENT SETNAME,
 * INFO), then never answers another command: a Redis that hangs.
 */
const INFO = '# Server\r\nloading:0\r\n';

async function hangingRedis(): Promise<string> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let buffered = '';
    socket.on('data', (d) => {
      buffered += d.toString('latin1');
      for (;;) {
        const cmd = takeCommand(buffered);
        if (cmd === undefined) return;
        buffered = buffered.slice(cmd.length);
        const name = cmd.args[0]?.toUpperCase();
        if (name === 'INFO') socket.write(`$${INFO.length}\r\n${INFO}\r\n`);
        else if (name === 'CLIENT' || name === 'SELECT') socket.write('+OK\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanup.push(() => new Promise((r) => {
    for (const s of sockets) s.destroy();
    server.close(r);
  }));
  return `redis://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function takeCommand(buf: string): { length: number; args: string[] } | undefined {
  const lines = buf.split('\r\n');
  if (lines.length < 2 || !lines[0]!.startsWith('*')) return undefined;
  const n = Number(lines[0]!.slice(1));
  const args: string[] = [];
  let length = lines[0]!.length + 2;
  for (let i = 0; i < n; i++) {
    const header = lines[1 + 2 * i];
    const value = lines[2 + 2 * i];
    // the last element of split is what follows the final CRLF: a value needs one after it
    if (header === undefined || value === undefined || 2 + 2 * i >= lines.length - 1) return undefined;
    args.push(value);
    length += header.length + 2 + value.length + 2;
  }
  return { length, args };
}

describe.skipIf(!url)('rate limiting shared through Redis', () => {
  it('admits exactly the limit across two gateway instances with their own clients', async () => {
    const limit = 25;
    const id = `two-instances-${process.pid}-${Date.now()}`;
    const [a, b] = [
      rateLimit({ id, limit, window: '1h', store: new RedisRateLimitStore({ client: await client(url), failOpen: false }) })(() => of(OK)),
      rateLimit({ id, limit, window: '1h', store: new RedisRateLimitStore({ client: await client(url), failOpen: false }) })(() => of(OK)),
    ];
    const statuses = await Promise.all(Array.from({ length: 80 }, (_, i) => outcome((i % 2 === 0 ? a : b)(request()))));
    expect(statuses.filter((s) => s === 200)).toHaveLength(limit);
    expect(statuses.filter((s) => s === 429)).toHaveLength(80 - limit);
  });

  it('counts remaining down across instances and sets the headers', async () => {
    const id = `headers-${process.pid}-${Date.now()}`;
    const make = async () => rateLimit({ id, limit: 5, window: '1h', store: new RedisRateLimitStore({ client: await client(url) }) })(() => of(OK));
    const a = await make();
    const b = await make();
    const first = await firstValueFrom(a(request()));
    const second = await firstValueFrom(b(request()));
    expect(first.headers.slice(0, 4)).toEqual(['ratelimit-limit', '5', 'ratelimit-remaining', '4']);
    expect(second.headers.slice(0, 4)).toEqual(['ratelimit-limit', '5', 'ratelimit-remaining', '3']);
  });

  it('lets the key expire in Redis once its bucket has refilled', async () => {
    const c = await client(url);
    const store = new RedisRateLimitStore({ client: c, prefix: `expiry-${process.pid}-${Date.now()}:` });
    await store.consume('k', gcraRule(1, 10_000));
    const ttl = await c.pttl(`${(store as unknown as { prefix: string }).prefix}k`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(10_000);
  });
});

describe.skipIf(!url)('rate limiting when Redis goes away', () => {
  it('fails open, counts and logs the fallback once, and recovers when Redis is back', async () => {
    const port = await freePort();
    const proc = await ownRedis(port);
    const logger = quietLogger();
    const onFallback = vi.fn();
    const store = new RedisRateLimitStore({ url: `redis://127.0.0.1:${port}`, timeout: '150ms', logger, onFallback });
    cleanup.push(() => store.close());
    await redisReady(store.client);
    const handler = rateLimit({ limit: 1, window: '1h', store })(() => of(OK));

    expect(await outcome(handler(request()))).toBe(200);
    expect(await outcome(handler(request()))).toBe(429); // Redis is counting

    await stopRedisServer(proc, 'SIGKILL');
    const statuses = await Promise.all([1, 2, 3].map(() => outcome(handler(request()))));
    expect(statuses).toEqual([200, 200, 200]);
    expect(store.fallbacks).toBe(3);
    expect(onFallback).toHaveBeenCalledTimes(3);
    expect(logger.warn).toHaveBeenCalledTimes(1);

    await ownRedis(port);
    await redisReady(store.client, '10s');
    expect(await outcome(handler(request('10.9.9.9')))).toBe(200);
    expect(logger.info).toHaveBeenCalledTimes(1);
    expect(store.fallbacks).toBe(3);
  });

  it('fails closed with 503 and retry-after when failOpen is false', async () => {
    const port = await freePort();
    const proc = await ownRedis(port);
    const store = new RedisRateLimitStore({ url: `redis://127.0.0.1:${port}`, failOpen: false, logger: quietLogger() });
    cleanup.push(() => store.close());
    await redisReady(store.client);
    const next = vi.fn(() => of(OK));
    const handler = rateLimit({ limit: 10, store })(next);
    expect(await outcome(handler(request()))).toBe(200);

    await stopRedisServer(proc, 'SIGKILL');
    const err: unknown = await firstValueFrom(handler(request())).catch((e: unknown) => e);
    expect(isGatewayError(err) && err.code).toBe('SERVICE_UNAVAILABLE');
    expect(isGatewayError(err) && err.headers).toEqual({ 'retry-after': '1' });
    expect(next).toHaveBeenCalledTimes(1);
  });

  it('does not hold a request on a Redis that accepts commands and never answers', async () => {
    const target = await hangingRedis();
    const c = await client(target);
    const store = new RedisRateLimitStore({ client: c, timeout: '100ms', logger: quietLogger() });
    expect(await outcome(rateLimit({ store })(() => of(OK))(request()))).toBe(200);
    expect(store.fallbacks).toBe(1);
  });

  it('does not hold a request even on a client built without a command timeout', async () => {
    const target = await hangingRedis();
    const c = new Redis(target); // offline queue on, no command timeout: the store's own guard must act
    cleanup.push(() => c.disconnect());
    await redisReady(c);
    const store = new RedisRateLimitStore({ client: c, timeout: '100ms', failOpen: false, logger: quietLogger() });
    expect(await outcome(rateLimit({ store })(() => of(OK))(request()))).toBe(503);
  });
});
