import { spawn, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/global-setup.ts';
import { rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';

/**
 * The seventh black-box audit (notes/s9/A7-findings.md), upstream
 * connections: rxgate started as users start it (the CLI on a YAML file),
 * upstreams on node:net answering with exact bytes, to see what the pool does
 * when an upstream closes a kept-alive connection as it is reused, says
 * `Connection: close`, hints `Keep-Alive: timeout=N`, answers before reading
 * a body, never answers, or is down beside others.
 */

/** One request a raw upstream framed: which connection (1, 2, …) and which request on it. */
interface Seen { conn: number; nth: number; method: string; target: string; body: string }

/**
 * A node:net upstream. `answer(seen)` returns the bytes to write for a
 * request, 'reset' to destroy the connection without answering (after
 * reading the whole request), or 'hold' to never answer.
 */
interface RawUpstream { url: string; seen: Seen[]; connections: number; server: Server; sockets: Set<Socket> }

function rawUpstream(answer: (seen: Seen) => string | 'reset' | 'hold'): Promise<RawUpstream> {
  const up: RawUpstream = { url: '', seen: [], connections: 0, server: null as unknown as Server, sockets: new Set() };
  up.server = createServer((socket) => {
    const conn = ++up.connections;
    (socket as Socket & { conn?: number }).conn = conn;
    up.sockets.add(socket);
    socket.on('close', () => up.sockets.delete(socket));
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let nth = 0;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buf.subarray(0, end).toString('latin1');
        const m = /\r\ncontent-length: *(\d+)/i.exec(head);
        const n = m === null ? 0 : Number(m[1]);
        if (buf.length < end + 4 + n) return;
        const [method, target] = head.split(' ') as [string, string];
        const seen: Seen = { conn, nth: ++nth, method, target, body: buf.subarray(end + 4, end + 4 + n).toString() };
        buf = buf.subarray(end + 4 + n);
        up.seen.push(seen);
        const out = answer(seen);
        if (out === 'reset') {
          socket.destroy();
          return;
        }
        if (out !== 'hold') socket.write(out);
      }
    });
  });
  return new Promise((resolve) => up.server.listen(0, '127.0.0.1', () => {
    up.url = `http://127.0.0.1:${(up.server.address() as AddressInfo).port}`;
    resolve(up);
  }));
}

const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

let runs: RxgateRuns;
const ups: RawUpstream[] = [];
const httpUps: HttpServer[] = [];

beforeAll(() => {
  runs = rxgateRuns();
});

afterAll(async () => {
  runs?.remove();
  for (const up of ups) {
    for (const s of up.sockets) s.destroy();
    await new Promise((r) => up.server.close(r));
  }
  for (const s of httpUps) {
    s.closeAllConnections();
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

async function send(client: Client | string, path: string, method = 'GET', body?: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const opts = { method, headersTimeout: 10_000, bodyTimeout: 10_000, ...(body === undefined ? {} : { body }) };
  const res = typeof client === 'string' ? await request(client + path, opts) : await client.request({ ...opts, path });
  return { status: res.statusCode, headers: res.headers as Record<string, string>, body: await res.body.text() };
}

/**
 * The blocks below run side by side, each on a gateway process and upstreams of its own (starting them one
 * after another was most of the file's time), with the time five processes starting at once take on a loaded
 * machine; the cases of a block run in order (`it.sequential`: they share its gateway, and some count its
 * upstreams' connections).
 */
const SIDE_BY_SIDE = { concurrent: true, timeout: 120_000 } as const;

describe('an upstream that closes a kept-alive connection as the gateway reuses it', SIDE_BY_SIDE, () => {
  let up: RawUpstream;
  let g: Gw;
  beforeAll(async () => {
    // The first request on each connection is answered and the connection
    // kept (no Connection: close); the second is read and the connection
    // closed without an answer: the race of an idle timeout firing just as a
    // request arrives, made exact.
    up = await rawUpstream((s) => (s.nth === 1 ? ok(`${s.method} ${s.target} on ${s.conn}`) : 'reset'));
    ups.push(up);
    g = await gateway(`services: { up: { upstreams: ["${up.url}"] } }\nroutes:\n  - { path: /ka/*, service: up }\n`);
  }, SIDE_BY_SIDE.timeout);

  it.sequential('answers a GET with 200 from a fresh connection (retried, as nginx and undici retry an idempotent request on a reused connection)', async () => {
    const client = new Client(g.gw);
    try {
      expect((await send(client, '/ka/1')).status).toBe(200);
      const second = await send(client, '/ka/2');
      expect(second.status).toBe(200);
      expect(second.body).toMatch(/^GET \/ka\/2 on \d+$/);
      expect(up.seen.filter((s) => s.target === '/ka/2').length).toBe(2);
    } finally {
      await client.close();
    }
  });

  it.sequential('never replays a POST whose bytes reached the upstream: one copy upstream, 502 with the JSON error', async () => {
    const client = new Client(g.gw);
    try {
      // A GET leaves a connection used once (retried onto a fresh one if it met a used one).
      expect((await send(client, '/ka/p1')).status).toBe(200);
      const second = await send(client, '/ka/p2', 'POST', 'two');
      expect(second.status).toBe(502);
      expect(JSON.parse(second.body).error.code).toBe('BAD_GATEWAY');
      expect(up.seen.filter((s) => s.target === '/ka/p2').map((s) => s.body)).toEqual(['two']);
    } finally {
      await client.close();
    }
  });

  it.sequential('takes the idle-timeout race for no strike: no ejection at ejectAfter: 1, the instance stays in rotation and answers', async () => {
    // The second GET meets the connection the first left, closed under it
    // (undici's SocketError, bytesRead > 0), and is sent again on a fresh one.
    // Before, the race was a strike: one ejected the instance for 10 s.
    const before = up.seen.length;
    expect((await send(g.gw, '/ka/r1')).status).toBe(200);
    expect((await send(g.gw, '/ka/r2')).status).toBe(200);
    expect(up.seen.slice(before).map((s) => [s.target, s.nth])).toEqual([['/ka/r1', 1], ['/ka/r2', 2], ['/ka/r2', 1]]);
    expect(await metric(g, 'rxgate_upstream_ejections_total', 'service="up"')).toBe(0);
    expect(await instanceOf(g, 'up')).toMatchObject({ ejected: false, ejectedUntil: null });
    expect((await send(g.gw, '/ka/after')).status).toBe(200);
  });
});

/** A counter's value on the admin listener's /metrics (0 when the series is not there yet). */
async function metric(g: Gw, name: string, labels: string): Promise<number> {
  const text = (await send(g.admin, '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

interface InstanceView { ejected: boolean; ejectedUntil: string | null; inFlight: number }

/** A service's first instance in the health view. */
async function instanceOf(g: Gw, service: string): Promise<InstanceView> {
  const health = JSON.parse((await send(g.gw, '/__rxgate/health')).body) as { services: Record<string, { instances: InstanceView[] }> };
  return health.services[service]!.instances[0]!;
}

describe('an instance that resets fresh connections as well', SIDE_BY_SIDE, () => {
  it.sequential('is still ejected: the retry\'s fresh connection (bytesRead 0) is a strike', async () => {
    const up = await rawUpstream(() => 'reset');
    ups.push(up);
    const g = await gateway(`services: { rst: { upstreams: ["${up.url}"] } }\nroutes:\n  - { path: /rst/*, service: rst }\n`);
    const res = await send(g.gw, '/rst/1');
    expect([res.status, JSON.parse(res.body).error.code]).toEqual([502, 'BAD_GATEWAY']);
    // Every attempt met a fresh connection: a strike each (ejectAfter: 1).
    expect(up.connections).toBeGreaterThanOrEqual(1);
    expect(await metric(g, 'rxgate_upstream_ejections_total', 'service="rst"')).toBeGreaterThanOrEqual(1);
    expect((await instanceOf(g, 'rst')).ejected).toBe(true);
  });
});

describe('connection reuse, limits and failures', SIDE_BY_SIDE, () => {
  let closing: RawUpstream;
  let hinting: HttpServer;
  let hintConnections = 0;
  let held: RawUpstream;
  let early: RawUpstream;
  let down = '';
  let g: Gw;
  beforeAll(async () => {
    // Says Connection: close on every answer, then closes.
    closing = await rawUpstream((s) => ok(`on ${s.conn}`, 'connection: close\r\n'));
    // node:http with a 1 s keepAliveTimeout: says Keep-Alive: timeout=1.
    hinting = createHttpServer({ keepAliveTimeout: 1000 }, (req, res) => {
      req.resume();
      res.end('hinted');
    });
    hinting.on('connection', () => hintConnections++);
    await new Promise<void>((r) => hinting.listen(0, '127.0.0.1', r));
    httpUps.push(hinting);
    // Holds …/hold/* until told (or forever), answers the rest.
    held = await rawUpstream((s) => (s.target.includes('/hold/') ? 'hold' : ok(`${s.target} on ${s.conn}`)));
    // Answers 413 and closes as soon as it has the head, reading none of the body.
    early = await rawUpstream(() => 'hold');
    early.server.removeAllListeners('connection');
    early.server.on('connection', (socket: Socket) => {
      early.sockets.add(socket);
      socket.on('error', () => {});
      socket.once('data', () => {
        const body = '{"too":"large"}';
        socket.end(`HTTP/1.1 413 Payload Too Large\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      });
    });
    ups.push(closing, held, early);
    down = `http://127.0.0.1:${await freePort()}`;
    g = await gateway(`services:
  closing: { upstreams: ["${closing.url}"] }
  hinting: { upstreams: ["http://127.0.0.1:${(hinting.address() as AddressInfo).port}"] }
  held: { upstreams: ["${held.url}"], timeout: 1s }
  queued: { upstreams: ["${held.url}"], connections: 1 }
  early: { upstreams: ["${early.url}"] }
  pair: { upstreams: ["${down}", "${closing.url}"], balancer: round-robin }
routes:
  - { path: /close/*, service: closing }
  - { path: /hint/*, service: hinting }
  - { path: /hold/*, service: held }
  - { path: /q/*, service: queued }
  - { path: /early/*, service: early }
  - { path: /pair/*, service: pair }
`);
  }, SIDE_BY_SIDE.timeout);

  it.sequential('opens a new connection after an upstream\'s Connection: close, with no failed request', async () => {
    const before = closing.connections;
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await send(g.gw, `/close/${i}`));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(closing.connections - before).toBe(4);
  });

  it.sequential('takes an upstream\'s Keep-Alive: timeout=1 as the connection\'s life: no request is sent on it after, none fails', async () => {
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await send(g.gw, `/hint/${i}`));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    // undici keeps a connection for the hint less 2 s: none for timeout=1.
    expect(hintConnections).toBe(4);
  });

  it.sequential('answers 504 GATEWAY_TIMEOUT with the JSON error when the upstream takes the request and never answers', async () => {
    const res = await send(g.gw, '/hold/never');
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body).error.code).toBe('GATEWAY_TIMEOUT');
  });

  it.sequential('queues a request beyond connections: 1 until the connection is free, then sends it on that connection (no refusal)', async () => {
    const before = held.seen.length;
    const first = send(g.gw, '/q/hold/release-me');
    const second = send(g.gw, '/q/second');
    // Both in flight at the instance (the health view counts a request from its dispatch)…
    const inFlight = async (): Promise<number> => {
      const health = JSON.parse((await send(g.gw, '/__rxgate/health')).body) as { services: Record<string, { instances: Array<{ inFlight: number }> }> };
      return health.services['queued']!.instances[0]!.inFlight;
    };
    while ((await inFlight()) < 2) await new Promise((r) => setTimeout(r, 10));
    while (held.seen.length === before) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 100));
    // …and only the first reached the upstream: the second waits for the one connection.
    expect(held.seen.slice(before).map((s) => s.target)).toEqual(['/q/hold/release-me']);
    const conn = held.seen[before]!.conn;
    const socket = [...held.sockets].find((s) => (s as Socket & { conn?: number }).conn === conn)!;
    socket.write(ok('released'));
    const [a, b] = await Promise.all([first, second]);
    expect([a.status, a.body, b.status]).toEqual([200, 'released', 200]);
    // Sent on the same connection once the first was answered.
    expect(held.seen.slice(before).map((s) => [s.target, s.conn, s.nth])).toEqual([['/q/hold/release-me', conn, 1], ['/q/second', conn, 2]]);
  });

  it.sequential('fails a GET over to the live instance when one of two is down, and a POST too (it never reached the down one)', async () => {
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await send(g.gw, `/pair/${i}`, i % 2 === 0 ? 'GET' : 'POST', 'x'));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
  });

  it.sequential('relays an upstream\'s early 413 to a client still uploading', async () => {
    const res = await request(`${g.gw}/early/upload`, { method: 'POST', body: Buffer.alloc(4 * 1024 * 1024, 'a'), headersTimeout: 10_000 });
    const body = await res.body.text();
    expect([res.statusCode, body]).toEqual([413, '{"too":"large"}']);
  });
});

describe('the queue behind connections is bounded (maxPending)', SIDE_BY_SIDE, () => {
  it.sequential('answers the request past connections + maxPending 503 UPSTREAM_OVERLOADED at once, sends it nowhere, and no breaker or strike counts it', async () => {
    const held = await rawUpstream((s) => (s.target.includes('/hold') ? 'hold' : ok(`${s.target} on ${s.conn}`)));
    ups.push(held);
    // consecutiveFailures: 1: one refusal counted by the breaker would open it.
    const g = await gateway(`services:
  bounded: { upstreams: ["${held.url}"], connections: 1, maxPending: 1, circuitBreaker: { consecutiveFailures: 1 } }
routes:
  - { path: /b/*, service: bounded }
`);
    const first = send(g.gw, '/b/hold');
    const second = send(g.gw, '/b/queued');
    while ((await instanceOf(g, 'bounded')).inFlight < 2) await new Promise((r) => setTimeout(r, 10));
    const refused = [];
    for (let i = 0; i < 3; i++) refused.push(await send(g.gw, `/b/over-${i}`));
    expect(refused.map((r) => [r.status, JSON.parse(r.body).error.code, r.headers['retry-after']])).toEqual(Array(3).fill([503, 'UPSTREAM_OVERLOADED', '1']));
    expect(held.seen.map((s) => s.target)).toEqual(['/b/hold']);
    const socket = [...held.sockets][0]!;
    socket.write(ok('released'));
    expect((await Promise.all([first, second])).map((r) => r.status)).toEqual([200, 200]);
    // Not the instance's failure, nor the service's: in rotation, breaker closed.
    expect((await send(g.gw, '/b/after')).status).toBe(200);
    expect(await metric(g, 'rxgate_errors_total', 'code="UPSTREAM_OVERLOADED"')).toBe(3);
    expect(await metric(g, 'rxgate_upstream_ejections_total', 'service="bounded"')).toBe(0);
    expect((await instanceOf(g, 'bounded')).ejected).toBe(false);
  });
});

/**
 * An address that never accepts: a listen(0) socket whose one backlog slot
 * is taken, so the kernel drops further SYNs (A7's probe; node:net accepts
 * everything, so Python holds it).
 */
function blackhole(): Promise<{ url: string; proc: ChildProcess }> {
  const script = [
    'import socket, sys',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'port = s.getsockname()[1]; fill = []',
    'for _ in range(4):',
    '    c = socket.socket(); c.setblocking(False); c.connect_ex(("127.0.0.1", port)); fill.append(c)',
    'print(port, flush=True); sys.stdin.read()',
  ].join('\n');
  const proc = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    proc.once('error', reject);
    proc.stdout!.once('data', (d: Buffer) => resolve({ url: `http://127.0.0.1:${d.toString().trim()}`, proc }));
  });
}

describe('connectTimeout', SIDE_BY_SIDE, () => {
  let hole: { url: string; proc: ChildProcess } | undefined;
  afterAll(() => {
    hole?.proc.kill();
  });

  it.sequential('gives up a connection that is never accepted after the service\'s connectTimeout: 504 "upstream connect timed out", as with undici\'s 10 s', async () => {
    hole = await blackhole();
    const g = await gateway(`services: { hole: { upstreams: ["${hole.url}"], connectTimeout: 300ms } }\nroutes:\n  - { path: /hole/*, service: hole }\n`);
    // The client waits 8 s at most: with the 10 s default this request has no answer by then.
    const res = await request(`${g.gw}/hole/x`, { headersTimeout: 8000 });
    const body = JSON.parse(await res.body.text()) as { error: { code: string; message: string } };
    expect([res.statusCode, body.error.code, body.error.message]).toEqual([504, 'GATEWAY_TIMEOUT', 'upstream connect timed out']);
    expect(await metric(g, 'rxgate_upstream_ejections_total', 'service="hole"')).toBe(1);
  });

  it.sequential('refuses a connectTimeout of 0 or past the timer limit, and a negative maxPending, with their key paths', async () => {
    const { parseConfig, ConfigError } = await import('../../lib/config/load.ts');
    const problems = (keys: string): readonly string[] => {
      try {
        parseConfig(`services: { s: { upstreams: ["http://127.0.0.1:1"], ${keys} } }\nroutes:\n  - { path: /s/*, service: s }\n`, 'gw.yaml', {}, []);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as InstanceType<typeof ConfigError>).problems;
      }
      return [];
    };
    expect(problems('connectTimeout: 0')).toEqual([expect.stringMatching(/^services\.s\.connectTimeout: .*must be more than 0/)]);
    expect(problems('connectTimeout: 2147483648')).toEqual([expect.stringMatching(/^services\.s\.connectTimeout: .*24\.8 days/)]);
    expect(problems('maxPending: -1')).toEqual([expect.stringMatching(/^services\.s\.maxPending: /)]);
    expect(problems('connectTimeout: 2s, maxPending: 0')).toEqual([]);
  });
});
