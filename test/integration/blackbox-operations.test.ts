import { connect } from 'node:net';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { Pool, request } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conventionBreaches, parseExposition, seriesOf, type Family } from '../support/prom-text.ts';
import { rxgateRuns, type RxgateProcess, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * The session-13 operations audit (notes/s13/A16-findings.md): rxgate run
 * as an SRE runs it (the CLI on YAML), probed where an Envoy/nginx operator
 * looks — /metrics under a client that tries to blow up its cardinality,
 * the access log under hostile input, the probes, the drain, the reload —
 * checked against README and docs/{observability,metrics-and-admin,
 * logs-and-tracing,operations}.md.
 */

let runs: RxgateRuns;
let upstream: Server;
let wss: WebSocketServer;
let up = '';

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    const path = new URL(req.url!, 'http://up').pathname;
    const odd = /^\/odd\/(\d+)$/.exec(path);
    if (odd !== null) {
      res.writeHead(Number(odd[1]), { 'content-type': 'text/plain' });
      res.end('odd');
    } else if (path === '/hang') {
      // never answers: the route's timeout does
    } else if (path === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('slow, ');
      setTimeout(() => res.end('but complete'), 1500);
    } else if (path === '/sse') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      let n = 0;
      const tick = setInterval(() => {
        res.write(`data: ${n++}\n\n`);
        if (n === 6) {
          clearInterval(tick);
          res.end();
        }
      }, 250);
    } else res.end('ok');
  });
  wss = new WebSocketServer({ noServer: true });
  upstream.on('upgrade', (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (m) => ws.send(m))));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  runs = rxgateRuns();
});

afterAll(async () => {
  runs?.remove();
  for (const c of wss?.clients ?? []) c.terminate();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

interface Gw {
  proc: RxgateProcess;
  gw: string;
  port: number;
  admin: string;
  file: string;
}

const LISTENERS = 'listen: { host: 127.0.0.1, port: 0 }\nadmin: { host: 127.0.0.1, port: 0 }\nreload: { watch: false }\n';

async function gateway(yaml: string, args: string[] = [], env: Record<string, string> = {}, listeners = LISTENERS): Promise<Gw> {
  const file = runs.file(listeners + yaml);
  const proc = runs.start(['--config', file, ...args], { RXGATE_LOG_LEVEL: 'info', ...env });
  const [l, a] = await Promise.all([proc.logged('rxgate listening'), proc.logged('rxgate admin listening')]);
  const port = l['port'] as number;
  return { proc, port, file, gw: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${a['port'] as number}` };
}

async function get(url: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const res = await request(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers ?? {}, headersTimeout: 10_000, bodyTimeout: 10_000 });
  return { status: res.statusCode, headers: res.headers as Record<string, string>, body: await res.body.text() };
}

async function scrape(admin: string): Promise<Map<string, Family>> {
  const res = await get(`${admin}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(res.body);
}

function total(families: Map<string, Family>, name: string, where: Record<string, string> = {}): number {
  let sum = 0;
  const family = families.get(name) ?? families.get(name.replace(/_(count|sum|bucket)$/, ''));
  for (const s of family?.samples ?? []) {
    if (s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** Every label value of every rxgate_ series (not process metrics): what a client could have put there. */
function labelValues(families: Map<string, Family>): Set<string> {
  const out = new Set<string>();
  for (const f of families.values()) {
    if (!f.name.startsWith('rxgate_') || f.name.startsWith('rxgate_process_')) continue;
    for (const s of f.samples) for (const [k, v] of Object.entries(s.labels)) if (k !== 'le') out.add(v);
  }
  return out;
}

/** Sends `raw` on a new connection and resolves with everything read until the gateway closes or `ms` pass. */
function rawExchange(port: number, raw: string | Buffer, ms = 1500): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(got);
    };
    const timer = setTimeout(done, ms);
    socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    socket.on('error', done);
    socket.on('close', done);
    socket.write(raw);
  });
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
const random = (n: number): string => Math.random().toString(36).slice(2, 2 + n);

const ROUTES = `
services:
  up: { upstreams: ["\${UP}"], timeout: 300ms }
routes:
  - { name: api, path: /api/*, service: up }
  - { name: odd, path: /odd/*, service: up }
  - { name: ws, path: /ws/*, service: up, websocket: true }
`;

describe('/metrics: series bounded by the config, whatever a client sends', () => {
  let g: Gw;
  beforeAll(async () => {
    g = await gateway(ROUTES.replace('${UP}', up));
  });

  it('keeps every label value to route names, status classes and error codes through 2,000 unknown paths, 200 methods, random hosts and odd upstream statuses', { timeout: 60_000 }, async () => {
    // One of each kind first, so the series a request can make at all exist before the count.
    await get(`${g.gw}/api/x`);
    await get(`${g.gw}/nothing-here`);
    for (const code of [299, 599]) await get(`${g.gw}/odd/${code}`);
    const before = await scrape(g.admin);

    const hosts = Array.from({ length: 50 }, () => `h${random(8)}.example`);
    const methods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'];
    const paths: string[] = [];
    const pool = new Pool(g.gw, { connections: 8, pipelining: 1 });
    try {
      const sent: Array<Promise<unknown>> = [];
      for (let i = 0; i < 2000; i++) {
        const path = `/u${i}-${random(10)}/${random(6)}`;
        paths.push(path);
        sent.push(pool.request({ path, method: methods[i % methods.length] as 'GET', headers: { host: hosts[i % hosts.length]! } }).then((r) => r.body.dump()));
      }
      for (let i = 0; i < 200; i++) sent.push(pool.request({ path: `/api/${random(12)}`, method: 'GET', headers: { host: hosts[i % hosts.length]! } }).then((r) => r.body.dump()));
      await Promise.all(sent);
    } finally {
      await pool.close();
    }
    // 200 methods uWS does not know: closed without an answer, before JS sees them (docs/limits.md#methods).
    const unknown = await Promise.all(Array.from({ length: 200 }, (_, i) => rawExchange(g.port, `FOO${i}X${random(4).toUpperCase()} /u${random(8)} HTTP/1.1\r\nHost: m${random(6)}.example\r\n\r\n`, 3000)));
    expect(unknown.every((answer) => answer === '')).toBe(true);
    const odd = [];
    for (const code of [299, 599, 999, 418, 103]) odd.push((await get(`${g.gw}/odd/${code}`)).status);

    const after = await scrape(g.admin);
    expect(conventionBreaches(after)).toEqual([]);
    const values = labelValues(after);
    values.delete(VERSION); // rxgate_build_info's
    for (const v of values) {
      expect(v, 'a label value a client chose').not.toMatch(/^FOO|\.example$|^\/u\d/);
      expect(v).toMatch(/^(api|odd|ws|none|up|[1-5]xx|[A-Z_]+|http:\/\/127\.0\.0\.1:\d+|\w+)$/);
    }
    for (const p of paths.slice(0, 50)) expect(values.has(p)).toBe(false);
    // The flood added no series beyond the kinds above: a 999 counts as 5xx, a 299 as 2xx.
    const added = seriesOf(after).filter((s) => !seriesOf(before).includes(s));
    expect(added.every((s) => /^rxgate_(requests_total|errors_total|upstream_responses_total|request_duration|upstream_duration|retries_total|upstream_ejections_total)/.test(s)), added.join('\n')).toBe(true);
    expect(added.length).toBeLessThan(40);
    expect(total(after, 'rxgate_requests_total', { route: 'none' })).toBeGreaterThanOrEqual(2001);
    // 299 and 599 pass through; 999 is no status undici takes (502), a lone 103 is interim and no final head follows (504).
    expect(odd).toEqual([299, 599, 502, 418, 504]);
  });

  it('adds no series for WebSocket upgrades to random paths, routed or not', { timeout: 30_000 }, async () => {
    const before = seriesOf(await scrape(g.admin));
    const port = g.port;
    const opened: Array<Promise<unknown>> = [];
    for (let i = 0; i < 40; i++) {
      opened.push(new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/${i % 2 === 0 ? 'ws' : 'nows'}/${random(10)}`, { headers: { host: `w${random(6)}.example` } });
        ws.on('open', () => ws.close(1000));
        ws.on('close', resolve);
        ws.on('error', resolve);
      }));
    }
    await Promise.all(opened);
    const after = await scrape(g.admin);
    expect(conventionBreaches(after)).toEqual([]);
    const added = seriesOf(after).filter((s) => !before.includes(s));
    for (const s of added) expect(s).toMatch(/^rxgate_(websocket_\w+|requests_total|errors_total|request_duration_seconds_\w+)\{("le":"[^"]+",)?("route":"(ws|none)"|"code":"[A-Z_]+")/);
    await until(async () => total(await scrape(g.admin), 'rxgate_websocket_closed_total', { route: 'ws' }) === 20);
  });

  it('counts nothing for the admin listener\'s own requests, and answers a wrong method 405 and an unknown path 404', async () => {
    const before = await scrape(g.admin);
    const answers = new Set<number>();
    for (let i = 0; i < 100; i++) answers.add((await get(`${g.admin}/x${random(8)}`, { method: i % 2 === 0 ? 'GET' : 'DELETE' })).status);
    answers.add((await get(`${g.admin}/metrics`, { method: 'POST' })).status);
    const after = await scrape(g.admin);
    expect([...answers].sort()).toEqual([404, 405]);
    expect(seriesOf(after).filter((s) => !seriesOf(before).includes(s))).toEqual([]);
    expect(total(after, 'rxgate_requests_total')).toBe(total(before, 'rxgate_requests_total'));
  });
});

describe('/metrics with --workers 2', () => {
  it('merges both workers into one valid exposition: HELP and TYPE once per family, counts added up, process metrics once', { timeout: 60_000 }, async () => {
    const g = await gateway(ROUTES.replace('${UP}', up), ['--workers', '2']);
    try {
      for (let i = 0; i < 20; i++) {
        // A new connection each: the kernel spreads them over the workers.
        const res = await request(`${g.gw}/${i % 2 === 0 ? 'api' : 'nope'}/${i}`, { reset: true });
        await res.body.dump();
      }
      const text = (await get(`${g.admin}/metrics`)).body;
      const families = parseExposition(text);
      // A16-findings F4: the main thread's event-loop-delay gauges read NaN before its histogram has a sample (prom-client's).
      expect(conventionBreaches(families).filter((b) => !/^rxgate_process_nodejs_eventloop_lag_\w+\{\}: NaN$/.test(b))).toEqual([]);
      expect(total(families, 'rxgate_requests_total')).toBe(20);
      expect(total(families, 'rxgate_request_duration_seconds_count')).toBe(20);
      expect(text.match(/^# TYPE rxgate_process_process_cpu_user_seconds_total /gm)).toHaveLength(1);
      // Which build answers, 1 and not 2 (A16-findings F9).
      expect(families.get('rxgate_build_info')?.samples).toEqual([{ name: 'rxgate_build_info', labels: { version: VERSION }, value: 1 }]);
    } finally {
      g.proc.proc.kill('SIGTERM');
      expect(await g.proc.exited).toBe(0);
    }
  });
});

describe('the access log under hostile input', () => {
  let g: Gw;
  const accessLines = (): Array<Record<string, unknown>> => g.proc.lines.filter((l) => l['msg'] === 'access');
  beforeAll(async () => {
    g = await gateway(`
log: { headers: [user-agent, x-junk, authorization, cookie], query: true, redact: [token] }
services:
  up: { upstreams: ["${up}"], timeout: 300ms, retry: false }
  dead: { upstreams: ["http://127.0.0.1:1"], retry: false }
routes:
  - { name: api, path: /api/*, service: up }
  - { name: hang, path: /hang, service: up }
  - { name: dead, path: /dead/*, service: dead }
`);
  });

  it('writes one parseable line per request: CR, LF, quotes and ESC in the path and headers are escaped, never a second line', async () => {
    const before = accessLines().length;
    const answers = [
      await rawExchange(g.port, 'GET /api/a%0d%0a%7b%22msg%22:%22forged%22%7d%1b[31m%22 HTTP/1.1\r\nHost: a\r\nConnection: close\r\nUser-Agent: "q" \\" {"msg":"forged"}\r\n\r\n', 3000),
      await rawExchange(g.port, 'GET /api/b HTTP/1.1\r\nHost: a\r\nConnection: close\r\nUser-Agent: ok\r\nX-Junk: \x1b[2J\x1b[31mred\r\n\r\n', 3000),
      // A bare CR inside a header value, and a request line split by CR LF: refused by uWS before JS.
      await rawExchange(g.port, 'GET /api/c HTTP/1.1\r\nHost: a\r\nX-Junk: a\rb\r\n\r\n', 800),
      await rawExchange(g.port, 'GET /api/d\r\n{"msg":"forged"} HTTP/1.1\r\nHost: a\r\n\r\n', 800),
    ];
    expect(answers[0]).toMatch(/^HTTP\/1\.1 200 /);
    await until(() => accessLines().length >= before + 1);
    const out = g.proc.stdout();
    for (const text of out.split('\n').filter((t) => t !== '')) {
      const line = JSON.parse(text) as Record<string, unknown>;
      expect(line['msg'], text.slice(0, 200)).not.toBe('forged');
    }
    const first = accessLines()[before]!;
    expect(first['path']).toBe('/api/a\r\n{"msg":"forged"}\u001b[31m"');
    expect((first['headers'] as Record<string, string>)['user-agent']).toBe('"q" \\" {"msg":"forged"}');
  });

  it('never writes Authorization, Cookie or a redacted query parameter, even listed in log.headers', async () => {
    const res = await get(`${g.gw}/api/s?token=S3CRET-Q&x=1`, { headers: { authorization: 'Bearer S3CRET-A', cookie: 'sid=S3CRET-C' } });
    expect(res.status).toBe(200);
    await until(() => accessLines().some((l) => l['path'] === '/api/s'));
    expect(g.proc.stdout()).not.toMatch(/S3CRET/);
    const line = accessLines().find((l) => l['path'] === '/api/s')!;
    expect(line['query']).toBe('token=[redacted]&x=1');
    expect(line['headers']).toEqual({ authorization: '[redacted]', cookie: '[redacted]' });
  });

  it('logs the gateway\'s own 404, 431, 502 and 504 with their status and request id', async () => {
    const ids: string[] = [];
    for (const path of ['/nowhere', '/dead/x', '/hang']) ids.push((await get(`${g.gw}${path}`)).headers['x-request-id']!);
    const big = await rawExchange(g.port, `GET /api/big HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Junk: ${'j'.repeat(40_000)}\r\n\r\n`, 3000);
    expect(big).toMatch(/^HTTP\/1\.1 431 /);
    await until(() => ids.every((id) => accessLines().some((l) => l['reqId'] === id)) && accessLines().some((l) => l['status'] === 431));
    expect(ids.map((id) => accessLines().find((l) => l['reqId'] === id)!['status'])).toEqual([404, 502, 504]);
  });
});

describe('probes and the admin listener', () => {
  it('answers liveness and readiness on the admin port only; /health is 503 with no instance in rotation while /ready stays 200 (readiness is the gateway\'s, as documented)', async () => {
    const g = await gateway(`
services:
  up: { upstreams: ["${up}"] }
  dead: { upstreams: ["http://127.0.0.1:1"], health: { path: /health, interval: 200ms, unhealthyAfter: 1 } }
routes:
  - { name: api, path: /api/*, service: up }
  - { name: dead, path: /dead/*, service: dead }
`);
    try {
      expect((await get(`${g.admin}/live`)).status).toBe(200);
      expect(await get(`${g.admin}/ready`)).toMatchObject({ status: 200, body: '{"status":"ready"}' });
      await until(async () => (await get(`${g.admin}/health`)).status === 503);
      expect((await get(`${g.admin}/ready`)).status).toBe(200);
      // The public port: no admin path answers there (routed as any path: no route is a 404)…
      for (const path of ['/metrics', '/ready', '/reload', '/__rxgate/metrics']) {
        const res = await get(`${g.gw}${path}`, { method: path === '/reload' ? 'POST' : 'GET' });
        expect(res.status, path).toBe(404);
        expect(res.body).not.toMatch(/# TYPE/);
      }
      // …but the public liveness and health paths do, as documented.
      expect((await get(`${g.gw}/__rxgate/live`)).status).toBe(200);
      expect((await get(`${g.gw}/__rxgate/health`)).status).toBe(503);
    } finally {
      g.proc.proc.kill('SIGTERM');
      expect(await g.proc.exited).toBe(0);
    }
  });
});

describe('drain and reload', () => {
  it('on SIGTERM: /ready 503, new connections refused, a keep-alive request answered with connection: close, a slow body, an SSE stream and a WebSocket finish or close 1001, then exit 0', { timeout: 30_000 }, async () => {
    const g = await gateway(`
drain: { timeout: 10s }
services: { up: { upstreams: ["${up}"] } }
routes:
  - { name: api, path: /*, service: up, websocket: true }
`);
    const pool = new Pool(g.gw, { connections: 1 });
    await (await pool.request({ path: '/api/warm', method: 'GET' })).body.dump();
    const slow = request(`${g.gw}/slow`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    const sse = request(`${g.gw}/sse`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
    const ws = new WebSocket(`ws://127.0.0.1:${g.port}/ws`);
    const wsClosed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise((r) => ws.on('open', r));
    await until(async () => total(await scrape(g.admin), 'rxgate_upstream_in_flight') >= 2);

    g.proc.proc.kill('SIGTERM');
    await g.proc.logged('rxgate draining: not ready, no new connections, requests in flight finish');
    expect(await get(`${g.admin}/ready`)).toMatchObject({ status: 503, body: '{"status":"draining"}' });
    // Liveness stays 200 through the drain: a failing liveness probe would have the kubelet kill the pod mid-drain.
    expect((await get(`${g.admin}/live`)).status).toBe(200);
    expect(await rawExchange(g.port, 'GET /api/new HTTP/1.1\r\nHost: a\r\n\r\n', 1000)).toBe('');
    const kept = await pool.request({ path: '/api/kept', method: 'GET' });
    expect(kept.statusCode).toBe(200);
    expect(kept.headers['connection']).toBe('close');
    await kept.body.dump();

    expect(await slow).toEqual({ status: 200, body: 'slow, but complete' });
    expect((await sse).body.match(/^data: \d+$/gm)).toHaveLength(6);
    expect(await wsClosed).toBe(1001);
    expect(await g.proc.exited).toBe(0);
    await pool.close();
  });

  it('exits 143 at once on a second SIGTERM during the drain', { timeout: 30_000 }, async () => {
    const g = await gateway(`
drain: { timeout: 20s }
services: { up: { upstreams: ["${up}"] } }
routes: [{ name: api, path: /*, service: up }]
`);
    const hung = request(`${g.gw}/hang`).then((r) => r.statusCode, () => 'cut');
    await until(async () => total(await scrape(g.admin), 'rxgate_upstream_in_flight') === 1);
    g.proc.proc.kill('SIGTERM');
    await g.proc.logged('rxgate draining: not ready, no new connections, requests in flight finish');
    g.proc.proc.kill('SIGTERM');
    expect(await g.proc.exited).toBe(143);
    expect(await hung).toBe('cut');
  });

  it('keeps the old config on a SIGHUP with a bad file (logged with its key path, counted), and loses no request through SIGHUP reloads under load', { timeout: 30_000 }, async () => {
    const good = `
services: { up: { upstreams: ["${up}"] } }
routes: [{ name: api, path: /api/*, service: up }]
`;
    const g = await gateway(good);
    writeFileSync(g.file, LISTENERS + good.replace('service: up }', 'service: up, retry: { attempts: -3 } }'));
    g.proc.proc.kill('SIGHUP');
    const refused = await g.proc.logged('config reload refused; the old config keeps serving');
    expect(JSON.stringify(refused['problems'])).toMatch(/routes\[0\]\.retry\.attempts/);
    expect(total(await scrape(g.admin), 'rxgate_reloads_total', { outcome: 'refused', trigger: 'signal' })).toBe(1);
    expect((await get(`${g.gw}/api/still`)).status).toBe(200);

    writeFileSync(g.file, LISTENERS + good);
    let stop = false;
    const statuses: number[] = [];
    const loops = Array.from({ length: 3 }, async () => {
      const pool = new Pool(g.gw, { connections: 1 });
      while (!stop) {
        const res = await pool.request({ path: '/api/load', method: 'GET' });
        statuses.push(res.statusCode);
        await res.body.dump();
      }
      await pool.close();
    });
    for (let i = 1; i <= 5; i++) {
      g.proc.proc.kill('SIGHUP');
      await g.proc.logged('config reloaded', i);
    }
    stop = true;
    await Promise.all(loops);
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(total(await scrape(g.admin), 'rxgate_reloads_total', { outcome: 'applied', trigger: 'signal' })).toBe(5);
    g.proc.proc.kill('SIGTERM');
    expect(await g.proc.exited).toBe(0);
  });
});

describe('trace context in the log', () => {
  it('keeps a valid traceparent\'s trace id and replaces a malformed one, never echoing it into the line', async () => {
    const g = await gateway(`
services: { up: { upstreams: ["${up}"] } }
routes: [{ name: api, path: /api/*, service: up }]
`);
    try {
      const valid = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const bad = ['00-"},"msg":"forged","x":{"-b7ad6b7169203331-01', `00-${'A'.repeat(32)}-b7ad6b7169203331-01`, `00-${'0'.repeat(32)}-b7ad6b7169203331-01`];
      for (const tp of [valid, ...bad]) expect((await get(`${g.gw}/api/t`, { headers: { traceparent: tp } })).status).toBe(200);
      await until(() => g.proc.lines.filter((l) => l['msg'] === 'access').length === 4);
      const ids = g.proc.lines.filter((l) => l['msg'] === 'access').map((l) => l['traceId'] as string);
      expect(ids[0]).toBe('0af7651916cd43dd8448eb211c80319c');
      for (const id of ids.slice(1)) expect(id).toMatch(/^(?!0{32})[0-9a-f]{32}$/);
      expect(g.proc.stdout()).not.toMatch(/forged|AAAAAAAA/);
    } finally {
      g.proc.proc.kill('SIGTERM');
      expect(await g.proc.exited).toBe(0);
    }
  });
});
