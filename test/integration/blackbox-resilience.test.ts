import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * The ninth black-box audit (notes/s10/A9-findings.md), pools and
 * resilience in depth: rxgate started as users start it (the CLI on a YAML
 * file) with upstreams written here on loopback, probed the way an Envoy or
 * nginx user would probe balancers, active health, ejection, retry, the
 * breaker, hedging, mirroring and discovery. Every assertion is a count or
 * a status, never a duration.
 */

let runs: RxgateRuns;
const servers: Array<Server | HttpServer> = [];
const sockets = new Set<Socket>();

/** One gateway for the file (its start is most of a case's cost): each describe adds its upstreams, services and routes as a part. */
let g: Gw;
interface Part { services: string; routes: string }
const parts: Array<() => Promise<Part>> = [];
const part = (setup: () => Promise<Part>): void => { parts.push(setup); };
/** A `services: … routes: …` YAML text as a part. */
const split = (yaml: string): Part => {
  const at = yaml.indexOf('routes:\n');
  return { services: yaml.slice('services:\n'.length, at), routes: yaml.slice(at + 'routes:\n'.length) };
};

beforeAll(async () => {
  runs = rxgateRuns();
  const all = await Promise.all(parts.map((setup) => setup()));
  g = await gateway(`services:\n${all.map((x) => x.services).join('')}routes:\n${all.map((x) => x.routes).join('')}`);
}, 30_000);

afterAll(async () => {
  runs?.remove();
  for (const s of sockets) s.destroy();
  for (const s of servers) {
    if ('closeAllConnections' in s) s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

interface Gw { proc: RxgateProcess; gw: string; admin: string }

async function gateway(yaml: string): Promise<Gw> {
  const file = runs.file(`listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\nreload: { watch: false }\n${yaml}`);
  const proc = runs.start(['--config', file], { RXGATE_LOG_LEVEL: 'info' });
  const [l, a] = await Promise.all([proc.logged('rxgate listening'), proc.logged('rxgate admin listening')]);
  return { proc, gw: `http://127.0.0.1:${l['port'] as number}`, admin: `http://127.0.0.1:${a['port'] as number}` };
}

interface Answer { status: number; headers: Record<string, string>; body: string }

async function send(url: string, init: { method?: string; headers?: Record<string, string>; body?: string; signal?: AbortSignal } = {}): Promise<Answer> {
  const res = await request(url, { headersTimeout: 10_000, bodyTimeout: 10_000, ...init });
  return { status: res.statusCode, headers: res.headers as Record<string, string>, body: await res.body.text() };
}

/** A counter's value on the admin listener's /metrics, summed over the series whose labels include `labels` (0 when none). */
async function metric(g: Gw, name: string, labels = ''): Promise<number> {
  const text = (await send(`${g.admin}/metrics`)).body;
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) && l.includes(labels))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

interface InstanceView { url: string; healthy: boolean; ejected: boolean; ejectedUntil: string | null; inFlight: number; lastCheck: { ok: boolean; status: number | null; at: string; error?: string } | null }

async function instances(g: Gw, service: string): Promise<InstanceView[]> {
  const health = JSON.parse((await send(`${g.gw}/__rxgate/health`)).body) as { services: Record<string, { instances: InstanceView[] }> };
  return health.services[service]!.instances;
}

/** An HTTP upstream on loopback that answers through `handle` and names itself in `x-up`. */
async function httpUp(name: string, handle: (req: IncomingMessage, res: ServerResponse) => void = (_q, s) => s.end(name)): Promise<{ url: string; server: HttpServer; hits: string[] }> {
  const hits: string[] = [];
  const server = createHttpServer((req, res) => {
    hits.push(req.url!);
    res.setHeader('x-up', name);
    handle(req, res);
  });
  server.on('connection', (s) => sockets.add(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, hits };
}

/** One request a raw upstream framed, and on which connection. */
interface Seen { conn: number; target: string; socket: Socket }

/** A node:net upstream: `answer` returns the bytes to write, 'hold' to answer never (the test writes on `socket`), or 'reset' to close without answering. */
async function rawUp(answer: (seen: Seen) => string | 'hold' | 'reset'): Promise<{ url: string; seen: Seen[]; connections: number; closed: number }> {
  const up = { url: '', seen: [] as Seen[], connections: 0, closed: 0 };
  const server = createServer((socket) => {
    const conn = ++up.connections;
    sockets.add(socket);
    socket.on('close', () => up.closed++);
    socket.on('error', () => {});
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      let end;
      while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
        const target = buf.slice(0, end).split(' ')[1]!;
        buf = buf.slice(end + 4);
        const seen = { conn, target, socket };
        up.seen.push(seen);
        const out = answer(seen);
        if (out === 'reset') return void socket.destroy();
        if (out !== 'hold') socket.write(out);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return up;
}

const ok = (body: string): string => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('the queue behind connections', () => {
  let up: Awaited<ReturnType<typeof rawUp>>;
  part(async () => {
    up = await rawUp((s) => (s.target.includes('hold') ? 'hold' : ok(`${s.target} on ${s.conn}`)));
    return split(`services:\n  one: { upstreams: ["${up.url}"], connections: 1 }\nroutes:\n  - { path: /q/*, service: one }\n`);
  });

  it('drops a queued request whose client left: never sent, and the connection it waited for is kept (Envoy drops a pending request on a downstream reset)', async () => {
    const first = send(`${g.gw}/q/hold`);
    await until(() => up.seen.length === 1);
    const leaving = new AbortController();
    const queued = send(`${g.gw}/q/queued`, { signal: leaving.signal }).catch((err: Error) => err);
    await until(async () => (await instances(g, 'one'))[0]!.inFlight === 2);
    leaving.abort();
    expect(await queued).toBeInstanceOf(Error);
    await until(async () => (await instances(g, 'one'))[0]!.inFlight === 1);
    up.seen[0]!.socket.write(ok('released'));
    expect((await first).body).toBe('released');
    const third = await send(`${g.gw}/q/third`);
    expect(third.status).toBe(200);
    // Never sent, and the one connection carried the third request: not destroyed for the request that left.
    expect(up.seen.map((s) => [s.target, s.conn])).toEqual([['/q/hold', 1], ['/q/third', 1]]);
    expect(up.connections).toBe(1);
  });
});

/** How many of `n` GETs to `url` each upstream (its `x-up`) answered. */
async function spread(url: string, n: number, headers: (i: number) => Record<string, string> = () => ({})): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const res = await send(url, { headers: headers(i) });
    expect(res.status).toBe(200);
    const up = res.headers['x-up']!;
    counts[up] = (counts[up] ?? 0) + 1;
  }
  return counts;
}

describe('balancers and weights', () => {
  let a: string;
  let b: string;
  part(async () => {
    [a, b] = await Promise.all([httpUp('a'), httpUp('b')]).then((u) => u.map((x) => x.url)) as [string, string];
    const slow = await httpUp('slow', (_q, s) => { setTimeout(() => s.end('slow'), 200); });
    const fast = await httpUp('fast');
    const pair = `[{ url: "${a}", weight: 1 }, { url: "${b}", weight: 3 }]`;
    return split(`services:
  rr: { upstreams: ${pair}, balancer: round-robin }
  rnd: { upstreams: ${pair}, balancer: random }
  lr: { upstreams: ${pair}, balancer: least-request }
  ewma: { upstreams: ["${slow.url}", "${fast.url}"], balancer: p2c-ewma }
routes:
  - { path: /rr/*, service: rr }
  - { path: /rnd/*, service: rnd }
  - { path: /lr/*, service: lr }
  - { path: /ewma/*, service: ewma }
`);
  });

  it('round-robin honours weights 1:3 exactly as smooth weighted round-robin does: 100 and 300 of 400, never a twice in a row', async () => {
    const order: string[] = [];
    for (let i = 0; i < 400; i++) order.push((await send(`${g.gw}/rr/${i}`)).headers['x-up']!);
    expect([order.filter((u) => u === 'a').length, order.filter((u) => u === 'b').length]).toEqual([100, 300]);
    expect(order.join('')).not.toContain('aa');
  });

  it('random follows the weights 1:3 roughly (a binomial draw: 100 of 400 expected, bounds 4.6 standard deviations wide)', async () => {
    const counts = await spread(`${g.gw}/rnd/x`, 400);
    expect(counts['a']).toBeGreaterThan(60);
    expect(counts['a']).toBeLessThan(140);
  });

  it('least-request on an idle service follows the weights 1:3 (nginx least_conn breaks ties by weighted round-robin): 100 and 300 of 400', async () => {
    // Before (load = (in flight + 1) / weight), every request of an idle service went to b: 0 and 400.
    const counts = await spread(`${g.gw}/lr/x`, 400);
    expect([counts['a'] ?? 0, counts['b'] ?? 0]).toEqual([100, 300]);
  });

  it('p2c-ewma sends little to a slow instance once it has seen its latency', async () => {
    const counts = await spread(`${g.gw}/ewma/x`, 60);
    // Round-robin would send it 30. The first request goes to the first listed (slow); after that the fast one wins
    // nearly every comparison (0 or 1 more on a quiet machine; a fast answer stalled past 200 ms on a loaded one may lose one).
    expect(counts['slow'] ?? 0).toBeLessThanOrEqual(10);
  });
});

describe('hash stickiness and file discovery', () => {
  let file: string;
  const ups: Array<{ url: string; name: string }> = [];
  const write = (names: string[]): void => writeFileSync(file, names.map((n) => ups.find((u) => u.name === n)!.url).join('\n') + (names.length > 0 ? '\n' : ''));
  /** Which instance (its `x-up`) each of 200 keys lands on, by header, cookie or client address. */
  const where = async (path: string, headers: (k: number) => Record<string, string>): Promise<string[]> => {
    const out: string[] = [];
    for (let k = 0; k < 200; k++) out.push((await send(`${g.gw}${path}`, { headers: headers(k) })).headers['x-up']!);
    return out;
  };
  part(async () => {
    for (const name of ['h1', 'h2', 'h3', 'h4']) ups.push({ name, url: (await httpUp(name)).url });
    file = join(runs.dir, 'sticky.txt');
    write(['h1', 'h2', 'h3']);
    return split(`services:
  sticky: { discovery: { file: { path: "${file}", interval: 50ms } }, balancer: hash, hash: { header: x-user } }
  crumbs: { upstreams: ["${ups[0]!.url}", "${ups[1]!.url}", "${ups[2]!.url}"], balancer: hash, hash: { cookie: sid } }
  byip: { upstreams: ["${ups[0]!.url}", "${ups[1]!.url}", "${ups[2]!.url}"], balancer: hash, hash: { ip: true } }
routes:
  - { path: /sticky/*, service: sticky }
  - { path: /crumbs/*, service: crumbs }
  - { path: /byip/*, service: byip }
`);
  });

  it('keeps each key on one instance, by header and by cookie, and one client address on one instance', async () => {
    const byHeader = await where('/sticky/x', (k) => ({ 'x-user': `u${k}` }));
    expect(await where('/sticky/y', (k) => ({ 'x-user': `u${k}` }))).toEqual(byHeader);
    expect(new Set(byHeader).size).toBe(3);
    const byCookie = await where('/crumbs/x', (k) => ({ cookie: `a=1; sid=s${k}; b=2` }));
    expect(await where('/crumbs/y', (k) => ({ cookie: `sid=s${k}` }))).toEqual(byCookie);
    expect(new Set(byCookie).size).toBe(3);
    expect(new Set(await where('/byip/x', () => ({}))).size).toBe(1);
  });

  it('moves only the keys the added instance takes (about a quarter), and on removal only the removed instance\'s keys', async () => {
    const before = await where('/sticky/x', (k) => ({ 'x-user': `u${k}` }));
    write(['h1', 'h2', 'h3', 'h4']);
    await until(async () => (await instances(g, 'sticky')).length === 4);
    const added = await where('/sticky/x', (k) => ({ 'x-user': `u${k}` }));
    const moved = added.filter((u, k) => u !== before[k]);
    // Every key that moved went to the new instance; its share is near 1/4 of 200.
    expect(new Set(moved)).toEqual(new Set(['h4']));
    expect(moved.length).toBeGreaterThan(20);
    expect(moved.length).toBeLessThan(90);
    write(['h1', 'h3', 'h4']);
    await until(async () => (await instances(g, 'sticky')).length === 3);
    const removed = await where('/sticky/x', (k) => ({ 'x-user': `u${k}` }));
    // Keys on h2 went elsewhere; every other key stayed where it was.
    expect(removed.filter((u, k) => u !== added[k]).length).toBe(added.filter((u) => u === 'h2').length);
    expect(removed.every((u, k) => added[k] === 'h2' || u === added[k])).toBe(true);
    expect(removed).not.toContain('h2');
  });

  it('keeps the instances it has when the file lists none, and says so in the log (not as a failure)', async () => {
    write([]);
    const said = 'service sticky: file discovery answered no instances: the current ones are kept';
    await g.proc.logged(said);
    expect(g.proc.lines.some((l) => String(l['msg']).includes('discovery failed'))).toBe(false);
    expect((await instances(g, 'sticky')).length).toBe(3);
    expect((await send(`${g.gw}/sticky/x`, { headers: { 'x-user': 'u1' } })).status).toBe(200);
    write(['h1', 'h3', 'h4']);
  });
});

/** An upstream whose /health probes pass at once until the test first answers one: from then on each waits for the test, oldest first. */
async function scriptedHealth(name: string): Promise<{ url: string; answer(status: number): Promise<void>; held: ServerResponse[]; probes: number }> {
  const held: ServerResponse[] = [];
  const waiting: Array<() => void> = [];
  let scripted = false;
  const up = await httpUp(name, (req, res) => {
    if (req.url !== '/health') return void res.end(name);
    out.probes++;
    if (!scripted) return void res.end();
    held.push(res);
    waiting.shift()?.();
  });
  const out = {
    url: up.url, held, probes: 0,
    async answer(status: number) {
      scripted = true;
      if (held.length === 0) await new Promise<void>((r) => waiting.push(r));
      held.shift()!.writeHead(status).end();
    },
  };
  return out;
}

describe('active health checks', () => {
  let counted: Awaited<ReturnType<typeof scriptedHealth>>;
  let hanging: { url: string; server: HttpServer };
  part(async () => {
    counted = await scriptedHealth('counted');
    hanging = await httpUp('hanging', (req, res) => { if (req.url !== '/health') res.end('hanging'); });
    return split(`services:
  counted: { upstreams: ["${counted.url}"], health: { path: /health, interval: 100ms, timeout: 30s, unhealthyAfter: 3, healthyAfter: 2, expectedStatuses: [200, 418] } }
  hanging: { upstreams: ["${hanging.url}"], health: { path: /health, interval: 100ms, timeout: 150ms, unhealthyAfter: 2, healthyAfter: 1 } }
routes:
  - { path: /counted/*, service: counted }
  - { path: /hanging/*, service: hanging }
`);
  });

  it('counts unhealthyAfter and healthyAfter in a row exactly, by expectedStatuses (a 204 not listed fails, a 418 listed passes)', async () => {
    const states: boolean[] = [];
    for (const status of [500, 503, 418, 500, 500, 204, 200, 500, 418, 200]) {
      const before = (await instances(g, 'counted'))[0]!;
      await counted.answer(status);
      await until(async () => (await instances(g, 'counted'))[0]!.lastCheck?.at !== before.lastCheck?.at);
      states.push((await instances(g, 'counted'))[0]!.healthy);
    }
    // Down at the third failure in a row (a pass between resets the count), up at the second pass in a row.
    expect(states).toEqual([true, true, true, true, true, false, false, false, false, true]);
    // The line goes out on stdout while /__rxgate/health answers on a socket: wait for it before counting.
    await until(() => g.proc.lines.some((l) => l['service'] === 'counted' && l['msg'] === 'upstream instance healthy'));
    expect(g.proc.lines.filter((l) => l['service'] === 'counted').map((l) => l['msg'])).toEqual(['upstream instance unhealthy', 'upstream instance healthy']);
  });

  it('fails a check that hangs past health.timeout (undici\'s head timeout), two in a row taking the instance out', async () => {
    await until(async () => !(await instances(g, 'hanging'))[0]!.healthy);
    const view = (await instances(g, 'hanging'))[0]!;
    expect(view.healthy).toBe(false);
    expect(view.lastCheck).toMatchObject({ ok: false, status: null, error: 'UND_ERR_HEADERS_TIMEOUT' });
  });
});

describe('passive ejection', () => {
  let good = false;
  part(async () => {
    const up = await rawUp(() => (good ? ok('fine') : 'reset'));
    return split(`services:
  flaky: { upstreams: ["${up.url}"], ejectFor: 100ms, maxEjectFor: 350ms, ejectAfter: 1, panic: false, retry: false, circuitBreaker: false }
routes:
  - { path: /flaky/*, service: flaky }
`);
  });

  it('doubles ejectFor on each ejection up to maxEjectFor, and starts again from ejectFor after an answer', async () => {
    const strike = async (): Promise<void> => {
      await until(async () => !(await instances(g, 'flaky'))[0]!.ejected);
      expect((await send(`${g.gw}/flaky/x`)).status).toBe(502);
    };
    for (let i = 0; i < 4; i++) await strike();
    // While ejected, panic: false answers at once without sending.
    expect((await send(`${g.gw}/flaky/x`)).status).toBe(503);
    await until(async () => !(await instances(g, 'flaky'))[0]!.ejected);
    good = true;
    expect((await send(`${g.gw}/flaky/x`)).status).toBe(200);
    good = false;
    // The kept connection reset under the next request is the idle-timeout race, forgiven once per answer: no ejection.
    expect((await send(`${g.gw}/flaky/x`)).status).toBe(502);
    expect((await instances(g, 'flaky'))[0]!.ejected).toBe(false);
    await strike();
    await until(() => g.proc.lines.filter((l) => l['service'] === 'flaky' && l['msg'] === 'upstream instance ejected').length === 5);
    const ejections = g.proc.lines.filter((l) => l['service'] === 'flaky' && l['msg'] === 'upstream instance ejected').map((l) => [l['forMs'], l['ejections']]);
    expect(ejections).toEqual([[100, 1], [200, 2], [350, 3], [350, 4], [100, 1]]);
  });
});

describe('retry from YAML', () => {
  let silent: Awaited<ReturnType<typeof httpUp>>;
  let first: Awaited<ReturnType<typeof httpUp>>;
  let second: Awaited<ReturnType<typeof httpUp>>;
  part(async () => {
    const byQuery = (name: string) => (req: IncomingMessage, res: ServerResponse): void => {
      const status = Number(new URL(req.url!, 'http://x').searchParams.get(name) ?? 200);
      res.writeHead(status, status === 503 ? { 'retry-after': '7' } : {}).end(name);
    };
    silent = await httpUp('silent', () => undefined);
    first = await httpUp('first', byQuery('first'));
    second = await httpUp('second', byQuery('second'));
    const pair = `["${first.url}", "${second.url}"], balancer: round-robin`;
    return split(`services:
  plain: { upstreams: ${pair} }
  on503: { upstreams: ${pair}, retry: { statuses: [503], retryAfter: false } }
  stingy: { upstreams: ${pair}, retry: { statuses: [503], retryAfter: false, budget: { ratio: 0, minRetries: 0, minConcurrent: 0 } } }
  bounded: { upstreams: ["${silent.url}"], retry: { attempts: 10, base: 10ms, cap: 10ms }, timeouts: { total: 500ms, perAttempt: 150ms } }
routes:
  - { path: /bounded/*, service: bounded }
  - { path: /plain/*, service: plain }
  - { path: /on503/*, service: on503 }
  - { path: /stingy/*, service: stingy }
`);
  });

  it('passes an upstream 503 on by default, not retried, with its Retry-After (nginx proxy_next_upstream: error timeout; Envoy retries only what retry_on lists)', async () => {
    const before = [first.hits.length, second.hits.length];
    const res = await send(`${g.gw}/plain/x?first=503&second=503`);
    expect([res.status, res.headers['retry-after'], res.headers['x-gateway-attempts']]).toEqual([503, '7', '1']);
    expect(first.hits.length + second.hits.length - before[0]! - before[1]!).toBe(1);
  });

  it('retries a listed status on the other instance and says 2 attempts', async () => {
    const before = [first.hits.length, second.hits.length];
    // Round-robin: one of the two requests goes to first (503, then retried on second), the other to second.
    const answers = [await send(`${g.gw}/on503/x?first=503`), await send(`${g.gw}/on503/x?first=503`)];
    expect(answers.map((a) => [a.status, a.body])).toEqual([[200, 'second'], [200, 'second']]);
    expect(answers.map((a) => a.headers['x-gateway-attempts']).sort()).toEqual(['1', '2']);
    expect([first.hits.length - before[0]!, second.hits.length - before[1]!]).toEqual([1, 2]);
  });

  it('bounds every attempt and wait together by timeouts.total: 504, and at most 4 attempts of 150 ms fit in 500 ms of the 10 allowed', async () => {
    const res = await send(`${g.gw}/bounded/x`);
    expect([res.status, JSON.parse(res.body).error.code]).toEqual([504, 'GATEWAY_TIMEOUT']);
    expect(silent.hits.length).toBeGreaterThanOrEqual(1);
    expect(silent.hits.length).toBeLessThanOrEqual(4);
  });

  it('gives the first attempt\'s answer when the budget refuses the retry, and logs the refusal', async () => {
    const res = await send(`${g.gw}/stingy/x?first=503&second=503`);
    expect([res.status, res.headers['x-gateway-attempts']]).toEqual([503, '1']);
    await g.proc.logged('retry refused: retry budget spent');
    expect(await metric(g, 'rxgate_retry_budget_refused_total', 'service="stingy"')).toBe(1);
  });
});

/** An upstream holding /hold requests until the test answers them (`held`), counting requests whose connection closed unanswered. */
async function holdingUp(name: string, holds = true): Promise<{ url: string; hits: string[]; held: ServerResponse[]; aborted: number }> {
  const out = { url: '', hits: [] as string[], held: [] as ServerResponse[], aborted: 0 };
  const up = await httpUp(name, (req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    if (holds && path.endsWith('/hold')) {
      out.held.push(res);
      res.on('close', () => { if (!res.writableFinished) out.aborted++; });
      return;
    }
    res.writeHead(path.endsWith('/fail') ? 500 : path.endsWith('/missing') ? 404 : 200).end(name);
  });
  out.url = up.url;
  out.hits = up.hits;
  return out;
}

describe('circuit breaker, hedging, mirroring and adaptive concurrency from YAML', () => {
  let brk: Awaited<ReturnType<typeof holdingUp>>;
  let slow: Awaited<ReturnType<typeof holdingUp>>;
  let fast: Awaited<ReturnType<typeof holdingUp>>;
  let shadow: Awaited<ReturnType<typeof holdingUp>>;
  let limited: Awaited<ReturnType<typeof holdingUp>>;
  part(async () => {
    [brk, slow, fast, shadow, limited] = await Promise.all(['brk', 'slow', 'fast', 'shadow', 'limited'].map((n) => holdingUp(n, n !== 'fast')));
    return split(`services:
  brk: { upstreams: ["${brk.url}"], retry: false, circuitBreaker: { consecutiveFailures: 2, resetTimeout: 1s, resetBackoff: 4, maxResetTimeout: 1m, probes: 2, failureStatuses: [500] } }
  rate: { upstreams: ["${brk.url}"], retry: false, circuitBreaker: { consecutiveFailures: 0, failureRate: 0.5, windowType: count, windowSize: 4, minimumCalls: 4, failureStatuses: [500] } }
  hedged: { upstreams: ["${slow.url}", "${fast.url}"], balancer: round-robin, retry: false }
  main: { upstreams: ["${fast.url}"] }
  shadow: { upstreams: ["${shadow.url}"] }
  limited: { upstreams: ["${limited.url}"], retry: false, adaptiveConcurrency: { initialLimit: 2, minLimit: 2, maxLimit: 2 } }
routes:
  - { path: /brk/*, service: brk }
  - { path: /rate/*, service: rate }
  - { path: /hedged/*, service: hedged, hedge: { after: 100ms, max: 1 } }
  - { path: /mirrored/*, service: main, mirror: { service: shadow, percent: 25 } }
  - { path: /limited/*, service: limited }
`);
  });

  const breakerState = async (name: string): Promise<string> => {
    const report = JSON.parse((await send(`${g.gw}/__rxgate/health`)).body) as { breakers: Array<{ breaker: string; state: string }> };
    return report.breakers.find((b) => b.breaker === name)?.state ?? 'closed';
  };
  const code = (a: Answer): string => (a.status === 503 ? JSON.parse(a.body).error.code as string : String(a.status));

  it('counts no 4xx as a failure, opens at consecutiveFailures, admits exactly `probes` calls half-open, and re-opens for resetTimeout × resetBackoff', async () => {
    for (let i = 0; i < 5; i++) expect((await send(`${g.gw}/brk/missing`)).status).toBe(404);
    expect(await breakerState('brk')).toBe('closed');
    const openedAt = Date.now();
    expect([(await send(`${g.gw}/brk/fail`)).status, (await send(`${g.gw}/brk/fail`)).status]).toEqual([500, 500]);
    const open = await send(`${g.gw}/brk/x`);
    expect([code(open), open.headers['retry-after']]).toEqual(['CIRCUIT_OPEN', '1']);
    // Open turns half-open lazily, on the first request after resetTimeout (the health view says open until then).
    await until(() => Date.now() - openedAt > 1100, { timeout: 3000, interval: 20 });
    const before = brk.held.length;
    const results: string[] = [];
    const four = Array.from({ length: 4 }, () => send(`${g.gw}/brk/hold`).then((a) => { results.push(code(a)); return a; }));
    await until(() => brk.held.length - before === 2 && results.length === 2);
    // The two over the probe slots were refused at once; only two reached the upstream.
    expect(results).toEqual(['CIRCUIT_OPEN', 'CIRCUIT_OPEN']);
    expect(brk.held.length - before).toBe(2);
    // One probe fails: open again, for 1 s × 4.
    brk.held[before]!.writeHead(500).end('probe failed');
    await until(() => results.includes('500'));
    const again = await send(`${g.gw}/brk/x`);
    expect([code(again), again.headers['retry-after']]).toEqual(['CIRCUIT_OPEN', '4']);
    // The other probe's late success does not close it.
    brk.held[before + 1]!.end('late');
    await Promise.all(four);
    expect(code(await send(`${g.gw}/brk/x`))).toBe('CIRCUIT_OPEN');
  });

  it('opens on failureRate only once the window holds minimumCalls', async () => {
    const statuses = [];
    for (const path of ['fail', 'fail', 'fail', 'ok', 'fail', 'ok']) statuses.push(code(await send(`${g.gw}/rate/${path}`)));
    // 3 of 3 failed, but under minimumCalls 4: closed; the fifth call's failure makes 3 of 4: open.
    expect(statuses).toEqual(['500', '500', '500', '200', '500', 'CIRCUIT_OPEN']);
  });

  it('hedges a GET without a head after `after` to the other instance and aborts the loser: the slow upstream sees its connection close', async () => {
    const res = await send(`${g.gw}/hedged/hold`);
    expect([res.status, res.body]).toEqual([200, 'fast']);
    await until(() => slow.aborted === 1);
    expect(slow.held.length).toBe(1);
    expect(await metric(g, 'rxgate_hedges_total', 'outcome="won"')).toBe(1);
    // The next request goes to fast first (round-robin) and is answered before `after`: no hedge.
    const slowBefore = slow.hits.length;
    expect((await send(`${g.gw}/hedged/quick`)).body).toBe('fast');
    expect(slow.hits.length).toBe(slowBefore);
    expect(await metric(g, 'rxgate_hedges_total', 'outcome="sent"')).toBe(1);
  });

  it('mirrors about `percent` of the requests (percent 25: 50 of 200 expected, a binomial draw)', async () => {
    for (let i = 0; i < 200; i++) expect((await send(`${g.gw}/mirrored/m${i}`)).status).toBe(200);
    await until(async () => shadow.hits.length === await metric(g, 'rxgate_mirror_total', 'outcome="sent"'));
    expect(shadow.hits.length).toBeGreaterThan(20);
    expect(shadow.hits.length).toBeLessThan(80);
  });

  it('refuses what is over the adaptive concurrency limit at once with 503 and Retry-After: 1, sending it nowhere', async () => {
    const four = Array.from({ length: 4 }, () => send(`${g.gw}/limited/hold`));
    await until(() => limited.held.length === 2);
    const refused = await Promise.race([Promise.all([four[2]!, four[3]!]), Promise.all([four[0]!, four[1]!])]);
    expect(refused.map((r) => [r.status, r.headers['retry-after']])).toEqual([[503, '1'], [503, '1']]);
    expect(limited.hits.length).toBe(2);
    for (const res of limited.held) res.end('done');
    expect((await Promise.all(four)).map((r) => r.status).sort()).toEqual([200, 200, 503, 503]);
  });
});

describe('health of an instance discovery adds', () => {
  let file: string;
  let steady: string;
  let fresh: string;
  let freshChecks = 0;
  let freshPasses = false;
  part(async () => {
    steady = (await httpUp('steady')).url;
    fresh = (await httpUp('fresh', (req, res) => {
      if (req.url !== '/health') return void res.end('fresh');
      freshChecks++;
      res.writeHead(freshPasses ? 200 : 500).end();
    })).url;
    file = join(runs.dir, 'joining.txt');
    writeFileSync(file, `${steady}\n`);
    return split(`services:
  joining: { discovery: { file: { path: "${file}", interval: 50ms } }, balancer: round-robin, health: { path: /health, interval: 2s, unhealthyAfter: 1, healthyAfter: 1 } }
routes:
  - { path: /joining/*, service: joining }
`);
  });

  it('keeps an added instance out of rotation until a check passes, and checks it at once (Envoy marks hosts added by discovery unhealthy until their first check)', async () => {
    writeFileSync(file, `${steady}\n${fresh}\n`);
    await until(async () => (await instances(g, 'joining')).length === 2);
    // Its /health answers 500: before (in rotation from the start, checked at the next round) about half of these went to it.
    expect(await spread(`${g.gw}/joining/x`, 20)).toEqual({ steady: 20 });
    await until(() => freshChecks >= 1);
    freshPasses = true;
    await until(async () => (await instances(g, 'joining'))[1]!.healthy, { timeout: 8000, interval: 50 });
    expect((await spread(`${g.gw}/joining/x`, 4))['fresh']).toBe(2);
  });
});

describe('health of instances discovery puts in place of all the others', () => {
  let file: string;
  let before: string;
  let after: string;
  part(async () => {
    before = (await httpUp('before')).url;
    // Its /health never answers: only a check's timeout could judge it, long after the switch.
    after = (await httpUp('after', (req, res) => {
      if (req.url !== '/health') res.end('after');
    })).url;
    file = join(runs.dir, 'replaced.txt');
    writeFileSync(file, `${before}\n`);
    return split(`services:
  replaced: { discovery: { file: { path: "${file}", interval: 50ms } }, panic: false, health: { path: /health, interval: 5s, timeout: 4s } }
routes:
  - { path: /replaced/*, service: replaced }
`);
  });

  it('serves through the new instances at once, with none of the old left to serve while they are checked (as Envoy keeps routing through a host set change)', async () => {
    expect(await spread(`${g.gw}/replaced/x`, 2)).toEqual({ before: 2 });
    writeFileSync(file, `${after}\n`);
    await until(async () => (await instances(g, 'replaced')).every((i) => new URL(i.url).port === new URL(after).port));
    // Before: each of these was 503 NO_HEALTHY_UPSTREAM until the new instance's first check passed.
    expect(await spread(`${g.gw}/replaced/x`, 10)).toEqual({ after: 10 });
  });
});

describe('the hash balancer\'s load bound', () => {
  let ups: Array<Awaited<ReturnType<typeof holdingUp>>>;
  part(async () => {
    ups = await Promise.all(['k1', 'k2', 'k3'].map((n) => holdingUp(n)));
    return split(`services:
  bounded-hash: { upstreams: [${ups.map((u) => `"${u.url}"`).join(', ')}], balancer: hash, hash: { header: x-user, loadFactor: 1.25 }, retry: false }
routes:
  - { path: /bound/*, service: bounded-hash }
`);
  });

  it('spills one hot key past its instance once that holds more than loadFactor × the mean (Google\'s bounded loads; Envoy\'s hash_balance_factor)', async () => {
    const twelve = Array.from({ length: 12 }, () => send(`${g.gw}/bound/hold`, { headers: { 'x-user': 'hot' } }));
    await until(() => ups.reduce((n, u) => n + u.held.length, 0) === 12);
    const held = ups.map((u) => u.held.length).sort((x, y) => y - x);
    // Each pick admits an instance only while its in flight + 1 <= ceil(1.25 × (in flight + 1) / 3): never more than 5 of 12 on one.
    expect(held[0]).toBeLessThanOrEqual(5);
    expect(held[0]).toBeGreaterThanOrEqual(4);
    for (const u of ups) for (const res of u.held) res.end('done');
    expect((await Promise.all(twelve)).every((r) => r.status === 200)).toBe(true);
  });
});

describe('an instance file discovery removes', () => {
  let file: string;
  let d1: Awaited<ReturnType<typeof holdingUp>>;
  let d2: Awaited<ReturnType<typeof holdingUp>>;
  part(async () => {
    [d1, d2] = await Promise.all([holdingUp('d1'), holdingUp('d2')]);
    file = join(runs.dir, 'draining.txt');
    writeFileSync(file, `${d1.url}\n${d2.url}\n`);
    return split(`services:
  draining: { discovery: { file: { path: "${file}", interval: 50ms } }, balancer: round-robin, retry: false }
routes:
  - { path: /drain/*, service: draining }
`);
  });

  it('lets the request it has in flight finish, and gets no new ones', async () => {
    // Round-robin's first pick is the first listed.
    const inFlight = send(`${g.gw}/drain/hold`);
    await until(() => d1.held.length === 1);
    writeFileSync(file, `${d2.url}\n`);
    await until(async () => (await instances(g, 'draining')).length === 1);
    d1.held[0]!.end('finished');
    expect([(await inFlight).status, (await inFlight).body]).toEqual([200, 'finished']);
    expect(d1.aborted).toBe(0);
    expect(await spread(`${g.gw}/drain/x`, 4)).toEqual({ d2: 4 });
  });
});

describe('health checks of a busy instance', () => {
  let held: ServerResponse | null = null;
  let sick = false;
  let checks = 0;
  part(async () => {
    const busy = await httpUp('busy', (req, res) => {
      if (req.url !== '/health') return void (held = res);
      checks++;
      res.writeHead(sick ? 503 : 200).end();
    });
    return split(`services:
  busy: { upstreams: ["${busy.url}"], connections: 1, retry: false, health: { path: /health, interval: 100ms, timeout: 1s, unhealthyAfter: 1, healthyAfter: 1 } }
routes:
  - { path: /busy/*, service: busy }
`);
  });

  it('checks an instance whose one connection a long request holds, on a connection of its own (Envoy\'s health checker keeps one per host)', async () => {
    const long = send(`${g.gw}/busy/long`);
    await until(() => held !== null);
    sick = true;
    // Before, every check waited in the pool's queue behind the long request: none reached the instance, it stayed in.
    const before = checks;
    await until(() => checks >= before + 2, { timeout: 5000, interval: 20 });
    await until(async () => !(await instances(g, 'busy'))[0]!.healthy);
    held!.end('done');
    expect((await long).status).toBe(200);
    sick = false;
    await until(async () => (await instances(g, 'busy'))[0]!.healthy);
  });
});
