import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, redisReady, type RedisClient } from '../../lib/resources/redis-client.ts';
import { freePort } from '../support/global-setup.ts';
import { redisUrl } from '../support/redis.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * From one process to a fleet (docs/fleet.md): gateway instances that share
 * one Redis share their rate limits and cache, and keep everything else to
 * themselves. Three real CLI processes (`node bin/rxgate.mjs --config …`)
 * against the run's redis-server; then the same through Redis Sentinel
 * and a Redis Cluster of three masters with a replica each (a failover in
 * both), each started here from the redis-server binary.
 */
const BIN = join(import.meta.dirname, '../../bin/rxgate.mjs');
const url = redisUrl();
const dir = mkdtempSync(join(tmpdir(), 'rxgate-fleet-'));
/** Every process this file starts, stopped by PID in afterAll. */
const processes = new Set<ChildProcess>();
const LIMIT = 10;

afterAll(async () => {
  await Promise.all([...processes].map(stop));
  rmSync(dir, { recursive: true, force: true });
});

async function stop(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  process.kill(proc.pid!, 'SIGTERM');
  return exited;
}

interface Started {
  proc: ChildProcess;
  match: RegExpExecArray;
  /** Resolves once `re` has matched the output `times` times in all (rejects if the process exits first). */
  waitFor(re: RegExp, times?: number): Promise<RegExpExecArray>;
}

/** Spawns a process and resolves once `ready` matches its output (rejects if it exits first). */
async function start(command: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = process.env): Promise<Started> {
  const proc = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  processes.add(proc);
  let out = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer): void => {
    out += d.toString();
    for (const w of waiters) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const waitFor = (re: RegExp, times = 1): Promise<RegExpExecArray> => new Promise((resolve, reject) => {
    const all = new RegExp(re.source, 'g');
    const check = (): void => {
      const found = [...out.matchAll(all)];
      if (found.length < times) return;
      waiters.delete(check);
      resolve(found[times - 1] as RegExpExecArray);
    };
    waiters.add(check);
    proc.once('exit', (code) => {
      if (waiters.delete(check)) reject(new Error(`${command} exited (${code}) before ${re} (${times}×): ${out}`));
    });
    check();
  });
  return { proc, match: await waitFor(ready), waitFor };
}

/** One gateway process from a config file; resolves with its base URL once it listens. */
async function gatewayProcess(config: string): Promise<Started & { url: string }> {
  const started = await start(process.execPath, [BIN, '--config', config, '--port', '0', '--host', '127.0.0.1'],
    /"port":(\d+)[^\n]*"msg":"rxgate listening"/, { ...process.env, RXGATE_LOG_LEVEL: 'info' });
  return { ...started, url: `http://127.0.0.1:${started.match[1]}` };
}

async function status(base: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await request(base + path, { headers });
  await res.body.dump();
  return res.statusCode;
}

function count(statuses: number[], code: number): number {
  return statuses.filter((s) => s === code).length;
}

/**
 * A redis-server of this file's own (master, replica, cluster node), each in
 * a directory of its own: a replica keeps the RDB of its full sync as
 * dump.rdb, which any later server in the same directory would load.
 */
async function redisServer(port: number, extra: string[] = []): Promise<ChildProcess> {
  const own = mkdtempSync(join(dir, `redis-${port}-`));
  const { proc } = await start('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', own, ...extra],
    /Ready to accept connections/);
  return proc;
}

/** A free port not handed out before in this file: two `freePort` calls running at once may return the same one. */
const handedOut = new Set<number>();
async function uniquePort(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

/** `make` with fresh ports until its server binds: another test file's listener may take a port between pick and bind. */
async function bound<T>(make: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await make();
    } catch (err) {
      if (i >= attempts || !String((err as Error).message).includes('Address already in use')) throw err;
    }
  }
}

async function client(target: string): Promise<RedisClient> {
  const c = createRedisClient(target, { commandTimeout: '2s' });
  await redisReady(c, '10s');
  return c;
}

describe.skipIf(!url)('a fleet of three gateway processes sharing one Redis', () => {
  const run = `fleet-${process.pid}-${Date.now()}`;
  let upstream: TestUpstream;
  let hits = 0;
  let gateways: Array<Started & { url: string }> = [];

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      hits++;
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=3600' }).end(`upstream ${req.url}`);
    });
    const config = join(dir, 'fleet.yaml');
    writeFileSync(config, `
redis: { url: "${url}" }
cache: { redis: { keyPrefix: "${run}:cache:" } }
services:
  backend: { upstreams: ["${upstream.url}"] }
routes:
  - path: /shared/*
    service: backend
    rateLimit: { limit: ${LIMIT}, window: 1h, key: route, store: redis, failOpen: false, id: "${run}" }
  - path: /warm/*
    service: backend
    rateLimit: { limit: 1000, window: 1h, key: route, store: redis, id: "${run}-warm" }
  - path: /local/*
    service: backend
    rateLimit: { limit: ${LIMIT}, window: 1h, key: route }
  - path: /cached/*
    service: backend
    cache: { ttl: 1h, store: redis }
`);
    gateways = await Promise.all([1, 2, 3].map(() => gatewayProcess(config)));
  }, 60_000);

  afterAll(async () => {
    await upstream?.close();
  });

  it('admits exactly the limit across the three for a limit in Redis (store: redis), each round asking all three at once', async () => {
    // One check per instance first: its connection is up and Redis has the script (the first check loads it).
    expect(await Promise.all(gateways.map((g) => status(g.url, '/warm/x')))).toEqual([200, 200, 200]);
    const statuses: number[] = [];
    for (let round = 0; round < 6; round++) statuses.push(...await Promise.all(gateways.map((g) => status(g.url, '/shared/x'))));
    expect(statuses).toHaveLength(18);
    expect({ admitted: count(statuses, 200), limited: count(statuses, 429) }, statuses.join(',')).toEqual({ admitted: LIMIT, limited: 18 - LIMIT });
    // Once the limit is spent, every instance refuses.
    expect(statuses.slice(-3)).toEqual([429, 429, 429]);
  });

  it('admits the limit on each instance for an in-memory limit: three times the limit in all', async () => {
    const perInstance = await Promise.all(gateways.map(async (g) => {
      const statuses = await Promise.all(Array.from({ length: LIMIT + 3 }, () => status(g.url, '/local/x')));
      return count(statuses, 200);
    }));
    expect(perInstance).toEqual([LIMIT, LIMIT, LIMIT]);
  });

  it('serves a response one instance cached in Redis from the other two without asking the upstream', async () => {
    const before = hits;
    const [a, b, c] = gateways;
    // Behind a Service or load balancer every instance sees the same Host (part of the cache key).
    const headers = { host: 'api.example' };
    const first = await request(`${a!.url}/cached/item`, { headers });
    expect(await first.body.text()).toBe('upstream /cached/item');
    expect(first.headers['x-cache']).toBe('MISS');
    // The store is written once the body has gone through: wait for the entry itself.
    const redis = new Redis(url);
    try {
      await until(async () => (await redis.keys(`${run}:cache:*`)).length > 0, { interval: 20 });
    } finally {
      redis.disconnect();
    }
    for (const g of [b!, c!]) {
      const res = await request(`${g.url}/cached/item`, { headers });
      expect(await res.body.text()).toBe('upstream /cached/item');
      expect(res.headers['x-cache']).toBe('HIT');
    }
    expect(hits - before).toBe(1);
  });

  it('stops each instance on SIGTERM with exit status 0', async () => {
    const codes = await Promise.all(gateways.map((g) => stop(g.proc)));
    expect(codes).toEqual([0, 0, 0]);
  });
});

describe.skipIf(!url)('gateways on a Sentinel-managed Redis (redis+sentinel://)', () => {
  let upstream: TestUpstream;
  let master: ChildProcess;
  /** Stopped when this block ends: a sentinel left running would make any later redis-server on the old master's port a replica. */
  const own: ChildProcess[] = [];
  let masterPort: number;
  let replicaPort: number;
  let sentinelPort: number;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    upstream = await startUpstream((_req, res) => res.end('ok'));
    masterPort = await uniquePort();
    master = await redisServer(masterPort);
    replicaPort = await uniquePort();
    own.push(master, await redisServer(replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]));
    sentinelPort = await uniquePort();
    const conf = join(dir, `sentinel-${sentinelPort}.conf`);
    // Quorum 1 (one sentinel here; three in production), quick to declare the master down.
    writeFileSync(conf, [
      `port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${dir}`,
      `sentinel monitor rxgate 127.0.0.1 ${masterPort} 1`,
      'sentinel down-after-milliseconds rxgate 500',
      'sentinel failover-timeout rxgate 5000',
    ].join('\n') + '\n');
    own.push((await start('redis-server', [conf, '--sentinel'], /\+monitor master rxgate/)).proc);
  }, 30_000);

  afterAll(async () => {
    for (const close of closers) await close();
    await upstream?.close();
    await Promise.all(own.map(stop));
  });

  async function gateway(id: string, limit: number): Promise<{ url: string }> {
    const gw = await startGatewayFromYaml(`
redis: { url: "redis+sentinel://127.0.0.1:${sentinelPort}/rxgate" }
services:
  backend: { upstreams: ["${upstream.url}"] }
routes:
  - path: /*
    service: backend
    rateLimit: { limit: ${limit}, window: 1h, key: route, store: redis, failOpen: false, id: "${id}" }
`);
    closers.push(() => gw.close());
    return gw;
  }

  it('shares a limit between two gateways, and keeps it through a failover to the replica', async () => {
    const id = `sentinel-${process.pid}-${Date.now()}`;
    const limit = 6;
    const [a, b] = await Promise.all([gateway(id, limit), gateway(id, limit)]);
    // Four of the six, from both gateways at once.
    const first = await Promise.all([a, b, a, b].map((g) => status(g.url, '/x')));
    expect(first).toEqual([200, 200, 200, 200]);

    // The replica has the bucket as the master last wrote it before the master goes away.
    const [fromMaster, fromReplica] = [await client(`redis://127.0.0.1:${masterPort}`), await client(`redis://127.0.0.1:${replicaPort}`)];
    try {
      const [key] = await fromMaster.keys(`rxgate:rl:${id}*`);
      const value = await fromMaster.get(key!);
      // A replica's first full sync can take seconds on a loaded machine.
      await until(async () => await fromReplica.get(key!) === value, { timeout: 15_000, interval: 20 });
    } finally {
      fromMaster.disconnect();
      fromReplica.disconnect();
    }
    await stop(master);

    // failOpen: false answers 503 until Sentinel has promoted the replica and both clients found it.
    for (const g of [a, b]) {
      let s = 503;
      await until(async () => (s = await status(g.url, '/x')) !== 503, { timeout: 20_000, interval: 50 });
      expect(s).toBe(200);
    }
    // Six admitted in all: the promoted replica went on counting where the master stopped.
    expect(await status(a.url, '/x')).toBe(429);
    expect(await status(b.url, '/x')).toBe(429);
  }, 45_000);
});

describe.skipIf(!url)('gateways on a Redis Cluster of three masters with a replica each (redis+cluster://)', () => {
  let upstream: TestUpstream;
  let seeds = '';
  /** The masters as the cluster was made (a failover test promotes one replica). */
  let masters: Array<{ port: number; proc: ChildProcess }> = [];
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => res.writeHead(200, { 'cache-control': 'public, max-age=3600' }).end(`upstream ${req.url}`));
    const nodes = await Promise.all([1, 2, 3, 4, 5, 6].map(() => bound(async () => {
      const port = await uniquePort();
      // The bus port is usually port + 10000, past 65535 for a high free port: name it.
      const busPort = await uniquePort();
      const proc = await redisServer(port, ['--cluster-enabled', 'yes', '--cluster-port', String(busPort), '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '1000']);
      return { port, proc };
    })));
    const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8' });
    expect(created.status, created.stdout + created.stderr).toBe(0);
    for (const n of nodes) {
      const c = new Redis(n.port, '127.0.0.1');
      try {
        // Ready once every node sees the cluster whole and each replica has synced.
        const synced = async (): Promise<boolean> => (await c.cluster('INFO')).includes('cluster_state:ok') &&
          ((await c.role())[0] === 'master' || /master_link_status:up/.test(await c.info('replication')));
        await until(synced, { timeout: 20_000, interval: 50 });
        if ((await c.role())[0] === 'master') masters.push(n);
      } finally {
        c.disconnect();
      }
    }
    expect(masters).toHaveLength(3);
    seeds = masters.slice(0, 2).map((n) => `127.0.0.1:${n.port}`).join(',');
  }, 60_000);

  afterAll(async () => {
    for (const close of closers) await close();
    await upstream?.close();
  });

  async function gateway(id: string): Promise<{ url: string }> {
    const gw = await startGatewayFromYaml(`
redis: { url: "redis+cluster://${seeds}" }
services:
  backend: { upstreams: ["${upstream.url}"] }
routes:
  - path: /limited
    service: backend
    rateLimit: { limit: ${LIMIT}, window: 1h, key: { header: x-client }, store: redis, failOpen: false, id: "${id}" }
  - path: /cached/*
    service: backend
    cache: { ttl: 1h, store: redis }
`);
    closers.push(() => gw.close());
    return gw;
  }

  it('shares per-client limits between two gateways, with the buckets spread over the masters', async () => {
    // A fixed id in a cluster made for this run: the same slots every time.
    const id = 'cluster-limits';
    const [a, b] = await Promise.all([gateway(id), gateway(id)]);
    const clients = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
    const admitted = new Map(clients.map((who) => [who, 0]));
    const ask = async (g: { url: string }, who: string): Promise<void> => {
      if (await status(g.url, '/limited', { 'x-client': who }) === 200) admitted.set(who, admitted.get(who)! + 1);
    };
    // One at a time first: each gateway's first check of a bucket loads the script on the master that holds it.
    for (const who of clients) for (const g of [a, b]) await ask(g, who);
    // Then rounds of every client on both gateways at once, past the limit.
    for (let round = 0; round < LIMIT; round++) await Promise.all(clients.flatMap((who) => [ask(a, who), ask(b, who)]));
    const results = clients.map((who) => admitted.get(who));
    expect(results).toEqual(clients.map(() => LIMIT));
    // Each master holds some of the buckets (six keys over three slot ranges).
    const perNode = await Promise.all(masters.map(async (n) => {
      const c = new Redis(n.port, '127.0.0.1');
      try {
        return (await c.keys(`rxgate:rl:${id}*`)).length;
      } finally {
        c.disconnect();
      }
    }));
    expect(perNode.reduce((x, y) => x + y, 0)).toBe(clients.length);
    expect(perNode.filter((k) => k > 0).length).toBeGreaterThanOrEqual(2);
  });

  it('serves from one gateway what the other cached in the cluster', async () => {
    const [a, b] = await Promise.all([gateway('c1'), gateway('c2')]);
    const path = `/cached/${process.pid}-${Date.now()}`;
    const headers = { host: 'api.example' };
    const first = await request(a.url + path, { headers });
    await first.body.dump();
    expect(first.headers['x-cache']).toBe('MISS');
    // The store is written once the body has gone through: wait for the entry on whichever master holds it.
    const conns = masters.map((n) => new Redis(n.port, '127.0.0.1'));
    try {
      const found = async (): Promise<boolean> => (await Promise.all(conns.map((m) => m.keys(`rxgate:cache:*${path}*`)))).some((k) => k.length > 0);
      await until(found, { interval: 20 });
    } finally {
      for (const m of conns) m.disconnect();
    }
    const second = await request(b.url + path, { headers });
    expect(await second.body.text()).toBe(`upstream ${path}`);
    expect(second.headers['x-cache']).toBe('HIT');
  });

  it('keeps a client\'s limit through a failover: never more than the limit, the replica that takes over goes on counting', async () => {
    const id = 'cluster-failover';
    const [a, b] = await Promise.all([gateway(id), gateway(id)]);
    const seen: number[] = [];
    const ask = async (g: { url: string }): Promise<number> => {
      const s = await status(g.url, '/limited', { 'x-client': 'zoe' });
      seen.push(s);
      return s;
    };
    for (const g of [a, b, a, b]) expect(await ask(g)).toBe(200);

    // The master holding the bucket, and its replica once it has the bucket as last written.
    const conns = masters.map((n) => new Redis(n.port, '127.0.0.1'));
    let holder: { port: number; proc: ChildProcess };
    let key: string;
    let value: string | null;
    let replicaPort: number;
    try {
      const keys = await Promise.all(conns.map((c) => c.keys(`rxgate:rl:${id}*`)));
      const at = keys.findIndex((k) => k.length > 0);
      holder = masters[at]!;
      key = keys[at]![0]!;
      value = await conns[at]!.get(key);
      replicaPort = Number(/slave0:ip=[^,]+,port=(\d+)/.exec(await conns[at]!.info('replication'))![1]);
      const replica = new Redis(replicaPort, '127.0.0.1');
      try {
        await replica.call('READONLY');
        await until(async () => await replica.get(key) === value, { interval: 20 });
      } finally {
        replica.disconnect();
      }
    } finally {
      for (const c of conns) c.disconnect();
    }
    await stop(holder.proc);
    masters = masters.filter((m) => m !== holder);

    // failOpen: false answers 503 until the replica is promoted and the gateways' clients know.
    for (const g of [a, b]) {
      await until(async () => await ask(g) !== 503, { timeout: 20_000, interval: 100 });
    }
    for (let i = 0; i < LIMIT; i++) await ask(i % 2 === 0 ? a : b);
    // The bucket survived: the promoted replica holds it, moved on from where the master left it.
    const promoted = new Redis(replicaPort, '127.0.0.1');
    try {
      expect((await promoted.role())[0]).toBe('master');
      expect(BigInt(await promoted.get(key) ?? '0')).toBeGreaterThanOrEqual(BigInt(value!));
    } finally {
      promoted.disconnect();
    }
    const admitted = count(seen, 200);
    expect(admitted, seen.join(',')).toBeLessThanOrEqual(LIMIT);
    // A check that timed out during the failover (503) may still count: ioredis
    // delivers it once the new master is known. So early refusals, at most one
    // per failed check; never a request too many.
    expect(admitted + count(seen, 503), seen.join(',')).toBeGreaterThanOrEqual(LIMIT);
    expect(seen.slice(-2)).toEqual([429, 429]);
  }, 60_000);
});

/**
 * How the kubelet updates a ConfigMap volume (its AtomicWriter): the files
 * live in a timestamped directory, `..data` links to it and each file name
 * links through `..data`; an update writes a new directory, points a new
 * `..data_tmp` link at it, renames that over `..data` and removes the old
 * directory. The file rxgate was started with is never written to.
 */
class ConfigMapVolume {
  private generation = 0;
  constructor(readonly dir: string, private readonly file: string) {}

  write(text: string): void {
    const current = this.generation === 0 ? null : `..gen_${this.generation}`;
    const next = `..gen_${++this.generation}`;
    mkdirSync(join(this.dir, next), { recursive: true });
    writeFileSync(join(this.dir, next, this.file), text);
    symlinkSync(next, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (current === null) symlinkSync(join('..data', this.file), join(this.dir, this.file));
    else rmSync(join(this.dir, current), { recursive: true });
  }

  get path(): string {
    return join(this.dir, this.file);
  }
}

describe('a pod\'s life as deploy/ runs it: ConfigMap reloads, /ready, drain on SIGTERM', () => {
  let upstream: TestUpstream;
  const slow: Array<() => void> = [];

  beforeAll(async () => {
    upstream = await startUpstream((req, res) => {
      // /one/slow answers when the test says so: a request in flight during the drain.
      if (req.url === '/one/slow') slow.push(() => res.end('slow done'));
      else res.end(`upstream ${req.url}`);
    });
  });

  afterAll(async () => {
    for (const release of slow) release();
    await upstream?.close();
  });

  const config = (routes: string): string => `
admin: { host: 127.0.0.1, port: 0 }
drain: { timeout: 20s }
reload: { watch: true, debounce: 100ms }
services:
  backend: { upstreams: ["${upstream.url}"] }
routes:
${routes}`;

  it('reloads each ConfigMap update, refuses a broken one, and drains in-flight requests on SIGTERM', async () => {
    const volume = new ConfigMapVolume(mkdtempSync(join(dir, 'configmap-')), 'rxgate.yaml');
    volume.write(config('  - { path: /one/*, service: backend }'));
    const gw = await gatewayProcess(volume.path);
    const admin = `http://127.0.0.1:${(await gw.waitFor(/"port":(\d+)[^\n]*"msg":"rxgate admin listening"/))[1]}`;
    expect(await status(admin, '/ready')).toBe(200);
    expect(await status(gw.url, '/one/a')).toBe(200);
    expect(await status(gw.url, '/two/a')).toBe(404);

    volume.write(config('  - { path: /one/*, service: backend }\n  - { path: /two/*, service: backend }'));
    await gw.waitFor(/"msg":"config reloaded"/);
    expect(await status(gw.url, '/two/a')).toBe(200);

    // A broken update: refused, and the pod keeps serving what it had.
    volume.write(config('  - { path: /three/*, service: nowhere }'));
    await gw.waitFor(/"msg":"config reload refused/);
    expect(await status(gw.url, '/two/a')).toBe(200);
    expect(await status(admin, '/ready')).toBe(200);

    // SIGTERM with a request in flight: not ready at once, the request finishes, then exit 0.
    const inFlight = request(`${gw.url}/one/slow`);
    void inFlight.catch(() => {});
    await until(() => slow.length === 1);
    const exited = new Promise<number | null>((resolve) => gw.proc.once('exit', (code) => resolve(code)));
    process.kill(gw.proc.pid!, 'SIGTERM');
    await gw.waitFor(/"msg":"rxgate draining/);
    expect(await status(admin, '/ready')).toBe(503);
    slow.shift()!();
    const res = await inFlight;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('slow done');
    expect(await exited).toBe(0);
  });
});
