import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { defer, from, NEVER, Observable, throwError } from 'rxjs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  BadRequestError, compose, defineStage, forward, ForbiddenError, Gateway, parseConfig, buildGateway, RateLimitedError,
  Service, ServiceUnavailableError, silentLogger, type Policy,
} from '../../lib/index.ts';

/**
 * The seventh black-box audit (notes/s9/A7-findings.md), the code API as a
 * user writes it from docs/pipeline-in-code.md and docs/stages.md: stages of
 * one's own that refuse with rxgate's errors, throw, reject, error later,
 * never answer; a registered stage named from YAML. Imports only what
 * lib/index.ts (the package's `rxgate`) exports.
 */

let upstream: Server;
let upUrl = '';
let upstreamHits = 0;
let gateway: Gateway;
let gw = '';
/** Subscriptions to the never-answering stage, and their ends. */
const never = { subscribed: 0, unsubscribed: 0 };

// A stage as docs/pipeline-in-code.md writes one: (next) => (req) => Observable.
const refuse = (err: () => Error): Policy => () => () => throwError(err);
const throwsSync: Policy = () => () => {
  throw new ForbiddenError('thrown, not emitted');
};
const throwsTypeError: Policy = () => () => {
  throw new TypeError('a bug in the stage, with a secret: hunter2');
};
const rejects: Policy = () => () => from(Promise.reject(new RateLimitedError('from a promise', { headers: { 'retry-after': '7' } })));
const rejectsPlain: Policy = () => () => defer(async () => {
  throw new Error('plain rejection, secret: hunter2');
});
const errorsLater: Policy = () => () => new Observable((s) => {
  const t = setTimeout(() => s.error(new ServiceUnavailableError('later')), 20);
  return () => clearTimeout(t);
});
const neverAnswers: Policy = () => () => new Observable(() => {
  never.subscribed++;
  return () => {
    never.unsubscribed++;
  };
});
// A JavaScript user's stage that is an async function: it returns a Promise, not an Observable.
const asyncStage = (() => async () => ({ status: 200, headers: [], body: null })) as unknown as Policy;
// The same that throws: its Promise rejects (review RR2 #1: unhandled, it ended the process).
const asyncRejects = (() => async () => {
  throw new Error('async stage failed, secret: hunter2');
}) as unknown as Policy;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    upstreamHits++;
    req.resume();
    res.end(`upstream ${req.url}`);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const svc = new Service('svc', { upstreams: [upUrl] });
  const fwd = forward(svc);
  gateway = new Gateway({
    host: '127.0.0.1', port: 0, services: [svc], logger: silentLogger,
    routes: [
      { path: '/bad-request', handler: compose(refuse(() => new BadRequestError('needs x-tenant')))(fwd) },
      { path: '/throws', handler: compose(throwsSync)(fwd) },
      { path: '/bug', handler: compose(throwsTypeError)(fwd) },
      { path: '/rejects', handler: compose(rejects)(fwd) },
      { path: '/rejects-plain', handler: compose(rejectsPlain)(fwd) },
      { path: '/later', handler: compose(errorsLater)(fwd) },
      { path: '/never', handler: compose(neverAnswers)(fwd) },
      { path: '/async', handler: compose(asyncStage)(fwd) },
      { path: '/async-rejects', handler: compose(asyncRejects)(fwd) },
      { path: '/ok/*', handler: fwd },
    ],
  });
  gw = `http://127.0.0.1:${await gateway.listen()}`;
});

afterAll(async () => {
  await gateway?.close();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

async function get(path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const res = await request(gw + path, { headersTimeout: 5000, bodyTimeout: 5000 });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

describe('a stage of one\'s own, in code', () => {
  it('answers an rxgate error it emits, thrown or emitted, sync or later, as {"error":{"code","message"}} with its status and headers', async () => {
    const answers = await Promise.all(['/bad-request', '/throws', '/rejects', '/later'].map(get));
    expect(answers.map((a) => [a.status, JSON.parse(a.body)])).toEqual([
      [400, { error: { code: 'BAD_REQUEST', message: 'needs x-tenant' } }],
      [403, { error: { code: 'FORBIDDEN', message: 'thrown, not emitted' } }],
      [429, { error: { code: 'RATE_LIMITED', message: 'from a promise' } }],
      [503, { error: { code: 'SERVICE_UNAVAILABLE', message: 'later' } }],
    ]);
    expect(answers[2]!.headers['retry-after']).toBe('7');
    expect(upstreamHits).toBe(0);
  });

  it('answers 500 INTERNAL_ERROR, without the message, to any other error thrown or rejected, and keeps serving', async () => {
    const answers = await Promise.all(['/bug', '/rejects-plain'].map(get));
    for (const a of answers) {
      expect(a.status).toBe(500);
      expect(JSON.parse(a.body).error.code).toBe('INTERNAL_ERROR');
      expect(a.body).not.toContain('hunter2');
    }
    expect((await get('/ok/after')).body).toBe('upstream /ok/after');
  });

  it('answers a stage that returns a Promise instead of an Observable with one 500, and keeps serving', async () => {
    const a = await get('/async');
    expect([a.status, JSON.parse(a.body).error.code]).toEqual([500, 'INTERNAL_ERROR']);
    expect((await get('/ok/after-async')).status).toBe(200);
  });

  it('unsubscribes a stage that never answers when its client goes away', async () => {
    const before = { ...never };
    const socket = connect(Number(new URL(gw).port), '127.0.0.1');
    await new Promise<void>((r) => socket.once('connect', r));
    socket.write('GET /never HTTP/1.1\r\nHost: api.test\r\n\r\n');
    while (never.subscribed === before.subscribed) await new Promise((r) => setTimeout(r, 5));
    socket.destroy();
    while (never.unsubscribed === before.unsubscribed) await new Promise((r) => setTimeout(r, 5));
    expect([never.subscribed - before.subscribed, never.unsubscribed - before.unsubscribed]).toEqual([1, 1]);
  });
});

describe('a stage written as an async function that throws', () => {
  it('is answered one 500 without the message, its rejection handled, and the gateway serves on', async () => {
    const answers = await Promise.all(['/async-rejects', '/async-rejects'].map(get));
    for (const a of answers) expect([a.status, JSON.parse(a.body).error.code, a.body.includes('hunter2')]).toEqual([500, 'INTERNAL_ERROR', false]);
    // A rejection nothing handles is reported a macrotask or two later: let it come (vitest fails the file on one).
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 50));
    expect((await get('/ok/after-reject')).body).toBe('upstream /ok/after-reject');
  });
});

describe('a stage registered with defineStage, named from YAML', () => {
  const requireHeader = defineStage({
    name: 'requireHeader',
    options: z.strictObject({ name: z.string().min(1).toLowerCase() }),
    build: ({ name }) => (next) => (req) =>
      req.headers[name] === undefined ? throwError(() => new BadRequestError(`this route needs a ${name} header`)) : next(req),
  });
  const yaml = (options: string): string => `
listen: { host: 127.0.0.1, port: 0 }
services: { users: { upstreams: ["${upUrl}"] } }
routes:
  - { path: /api/*, service: users, requireHeader: ${options} }
  - { path: /listed/*, service: users, pipeline: [requireHeader, retry], requireHeader: ${options} }
`;

  it('runs in the default order and where a pipeline list names it: 400 without the header, forwarded with it', async () => {
    const g = await buildGateway(parseConfig(yaml('{ name: X-Tenant }'), 'api.yaml', {}, [requireHeader]), null, { stages: [requireHeader], logger: silentLogger });
    const port = await g.listen();
    try {
      for (const path of ['/api/u', '/listed/u']) {
        const without = await request(`http://127.0.0.1:${port}${path}`);
        expect([without.statusCode, await without.body.json()]).toEqual([400, { error: { code: 'BAD_REQUEST', message: 'this route needs a x-tenant header' } }]);
        const withIt = await request(`http://127.0.0.1:${port}${path}`, { headers: { 'x-tenant': 'a' } });
        expect([withIt.statusCode, await withIt.body.text()]).toEqual([200, `upstream ${path}`]);
      }
    } finally {
      await g.close();
    }
  });

  it('refuses bad options with the key path, as docs/stages.md says', () => {
    expect(() => parseConfig(yaml('{ name: 42 }'), 'api.yaml', {}, [requireHeader])).toThrow(/routes\[0\]\.requireHeader\.name: Invalid input: expected string, received number/);
  });
});

describe('a pipeline module that calls runCli at its top level', () => {
  it('does not run the CLI again in a worker thread that imports it for its exports (no isMainThread guard needed)', async () => {
    const root = join(import.meta.dirname, '../..');
    const dir = mkdtempSync(join(tmpdir(), 'rxgate-module-'));
    try {
      // What docs/stages.md showed: the module registers its stages and starts the CLI, unguarded.
      const mod = join(dir, 'my-gateway.ts');
      writeFileSync(mod, `import { parentPort } from 'node:worker_threads';
import { runCli } from ${JSON.stringify(pathToFileURL(join(root, 'lib/index.ts')).href)};
export const stages = [];
const started = await runCli([], { stages, module: import.meta.url });
parentPort?.postMessage(['runCli returned', started]);
`);
      // What a gateway worker does first (worker-entry.mjs, worker-main.ts): the loader, then the module, with workerData naming it.
      const entry = join(dir, 'entry.mjs');
      writeFileSync(entry, `import ${JSON.stringify(pathToFileURL(join(root, 'bin/loader/register.mjs')).href)};
import { workerData } from 'node:worker_threads';
await import(workerData.pipelineModule);
`);
      const worker = new Worker(entry, { workerData: { pipelineModule: pathToFileURL(mod).href, argv: [] }, stdout: true, stderr: true });
      let stderr = '';
      worker.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      const messages: unknown[] = [];
      worker.on('message', (m) => messages.push(m));
      const code = await new Promise<number>((resolve) => worker.once('exit', resolve));
      // Before: the worker printed the usage ('--config FILE is required') and exited 2, which stops the gateway.
      expect([code, messages, stderr]).toEqual([0, [['runCli returned', null]], '']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
