import type { ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it, type TestContext } from 'vitest';
import { get } from '../support/answer.ts';
import { holdingUpstream, type HoldingUpstream } from '../support/holding-upstream.ts';
import { rxgateRuns } from '../support/rxgate-process.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * Graceful drain, with real signals to a real rxgate process (lib/cli.ts
 * through the repository's TypeScript loader): SIGTERM turns /ready 503 and
 * stops new connections at once, lets requests in flight finish, then exits
 * 0; a second signal exits at once; drain.timeout cancels what is left.
 */

// What bin/rxgate.mjs does: from dist/ when the run found it current, else the sources through the loader (test/support/cli-from.ts).
const runs = rxgateRuns();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
afterAll(() => runs.remove());

interface Child {
  proc: ChildProcess;
  url: string;
  admin: string;
  port: number;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  /** Resolves when a log line with this `msg` has been written. */
  logged(msg: string): Promise<unknown>;
}

/** Starts rxgate on `yaml` (admin on a free port) and resolves once both listeners are up. */
async function rxgate(yaml: string, extra: string[] = []): Promise<Child> {
  const gw = runs.start(['--config', runs.file(yaml), '--host', '127.0.0.1', '--port', '0', ...extra], { RXGATE_LOG_LEVEL: 'info' });
  const [listening, admin] = await Promise.all([gw.logged('rxgate listening'), gw.logged('rxgate admin listening')]);
  const port = listening['port'] as number;
  return { proc: gw.proc, port, url: `http://127.0.0.1:${port}`, admin: `http://127.0.0.1:${admin['port'] as number}`, exited: gw.exited, logged: (msg) => gw.logged(msg) };
}

/** A `HoldingUpstream`, closed after the test `t`. */
async function holding(t: TestContext): Promise<HoldingUpstream> {
  const up = await holdingUpstream();
  t.onTestFinished(() => up.close());
  return up;
}

const config = (url: string, drain = ''): string => `
admin: { host: 127.0.0.1, port: 0 }
${drain}
services:
  slow: { upstreams: ["${url}"], timeout: 60s }
routes:
  - { path: /*, service: slow, retry: false }
`;

/** Whether a new TCP connection to `port` is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(false); });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

// Each test starts an rxgate process (seconds of CPU on a loaded machine): generous timeouts, no duration asserted.
// These four run at once: each has its own process and upstream.
describe('graceful drain on SIGTERM', { timeout: 120_000, concurrent: true }, () => {
  it('finishes a slow request in flight while /ready answers 503 and new connections are refused, then exits 0', async (t) => {
    const { expect } = t;
    const up = await holding(t);
    const gw = await rxgate(config(up.url));
    expect((await get(`${gw.admin}/ready`)).status).toBe(200);

    const slow = request(`${gw.url}/slow`);
    await up.arrived;
    gw.proc.kill('SIGTERM');
    await gw.logged('rxgate draining: not ready, no new connections, requests in flight finish');

    const ready = await get(`${gw.admin}/ready`);
    expect(ready.status).toBe(503);
    expect(JSON.parse(ready.body)).toEqual({ status: 'draining' });
    expect(await refused(gw.port)).toBe(true);
    expect(gw.proc.exitCode).toBe(null);

    up.release();
    const res = await slow;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('slow, but complete');
    expect(await gw.exited).toBe(0);
  });

  it('finishes an upload that is still sending when SIGTERM comes', async (t) => {
    const { expect } = t;
    const up = await holding(t);
    const gw = await rxgate(config(up.url));
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const body = new Readable({ read() {} });
    const upload = request(`${gw.url}/upload`, { method: 'POST', body, headers: { 'content-length': String(chunk.length * 4) } });
    body.push(chunk);
    body.push(chunk);
    // The upload is under way: its head (and some of its body) is at the upstream.
    await up.arrived;
    gw.proc.kill('SIGTERM');
    await gw.logged('rxgate stopping');
    body.push(chunk);
    body.push(chunk);
    body.push(null);
    const res = await upload;
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe(`received ${chunk.length * 4} bytes`);
    expect(await gw.exited).toBe(0);
  });

  it('exits at once on a second signal, cutting off what is in flight', async (t) => {
    const { expect } = t;
    const up = await holding(t);
    const gw = await rxgate(config(up.url));
    const slow = request(`${gw.url}/slow`).then((res) => res.body.text(), (err: unknown) => err);
    await up.arrived;
    gw.proc.kill('SIGTERM');
    await gw.logged('rxgate stopping');
    gw.proc.kill('SIGINT');
    expect(await gw.exited).toBe(130);
    expect(await slow).toBeInstanceOf(Error);
  });

  it('cancels what still runs at drain.timeout, then exits 0', async (t) => {
    const { expect } = t;
    const up = await holding(t);
    const gw = await rxgate(config(up.url, 'drain: { timeout: 300ms }'));
    const slow = request(`${gw.url}/slow`).then((res) => res.body.text(), (err: unknown) => err);
    await up.arrived;
    gw.proc.kill('SIGTERM');
    await gw.logged('drain timeout: requests still in flight were cancelled');
    expect(await gw.exited).toBe(0);
    expect(await slow).toBeInstanceOf(Error);
  });
});

describe('with --workers 2', { timeout: 120_000 }, () => {
  it('relays POST /reload to every worker, and on SIGTERM drains them all and exits 0', async (t) => {
    const up = await holding(t);
    const yaml = config(up.url, 'reload: { watch: false }');
    const gw = await rxgate(yaml, ['--workers', '2']);
    await until(async () => (await get(`${gw.admin}/ready`)).status === 200, { timeout: 30_000, interval: 50 });
    expect((await get(`${gw.admin}/ready`)).status).toBe(200);
    const reload = await request(`${gw.admin}/reload`, { method: 'POST' });
    expect(reload.statusCode).toBe(200);
    expect(await reload.body.json()).toEqual({ outcome: 'applied' });
    const metrics = (await get(`${gw.admin}/metrics`)).body;
    // Both workers reloaded: their counts are added up.
    expect(metrics).toMatch(/^rxgate_reloads_total\{outcome="applied",trigger="admin"\} 2$/m);
    gw.proc.kill('SIGTERM');
    expect(await gw.exited).toBe(0);
  });
});

describe('Gateway.drain', () => {
  it('lets an SSE stream in flight run on until its upstream ends it', async () => {
    let more: () => void = () => {};
    const later = new Promise<void>((resolve) => { more = resolve; });
    const up = await startUpstream((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: one\n\n');
      void later.then(() => res.end('data: two\n\n'));
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml(`
services: { up: { upstreams: ["${up.url}"] } }
routes: [{ path: /*, service: up }]
`);
    cleanups.push(() => gw.close());
    const res = await request(`${gw.url}/events`, { headers: { accept: 'text/event-stream' } });
    expect(res.statusCode).toBe(200);
    const chunks: string[] = [];
    const read = (async () => {
      for await (const c of res.body) chunks.push(String(c));
    })();
    await until(() => chunks.length > 0);
    expect(chunks.join('')).toBe('data: one\n\n');

    const drained = gw.drain(30_000);
    expect(gw.state).toBe('draining');
    more();
    await read;
    expect(chunks.join('')).toBe('data: one\n\ndata: two\n\n');
    expect(await drained).toBe(true);
  });

  it('closes an idle keep-alive connection once nothing is in flight, and reports a clean drain', async () => {
    const up = await startUpstream((req, res) => {
      req.resume();
      res.end('ok');
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml(`
services: { up: { upstreams: ["${up.url}"] } }
routes: [{ path: /*, service: up }]
`);
    cleanups.push(() => gw.close());
    // One request on a raw keep-alive connection, then the connection sits idle.
    const socket = connect(gw.port, '127.0.0.1');
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    let received = '';
    socket.on('data', (d: Buffer) => { received += d.toString('latin1'); });
    socket.on('error', () => {});
    socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
    await until(() => received.endsWith('ok'));
    expect(received).toMatch(/^HTTP\/1\.1 200/);
    expect(gw.state).toBe('serving');

    expect(await gw.drain(30_000)).toBe(true);
    expect(gw.state).toBe('closed');
    await closed;
    expect(socket.destroyed).toBe(true);
  });
});
