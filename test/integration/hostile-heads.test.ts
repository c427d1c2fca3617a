import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { parseResponses } from '../support/raw-http.ts';
import { startGateway, startGatewayFromYaml } from '../support/servers.ts';

/**
 * Hostile request heads over raw sockets, against a gateway whose upstream
 * (node:http, a strict parser) records every request it gets. Each case
 * checks the answer, whether the connection was closed, and that the
 * upstream never saw what it should not (above all, a request smuggled in
 * a body that another parser reads differently).
 */

interface Seen { method: string; url: string; body: string }

let seen: Seen[];
let upstream: Server;
let upstreamUrl: string;
let gateway: Gateway & { url: string };

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, body: Buffer.concat(parts).toString('latin1') });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const service = new Service('up', { upstreams: [upstreamUrl] });
  gateway = await startGateway([{ path: '/*', handler: forward(service) }], { services: [service] });
});

afterAll(async () => {
  await gateway.close();
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});

beforeEach(() => {
  seen = [];
});

interface Outcome {
  /** Status codes of the complete responses received, in order. */
  statuses: number[];
  /** The bodies of those responses. */
  bodies: string[];
  /** The gateway closed the connection. */
  closed: boolean;
}

/** The complete responses in `buf`: their statuses and bodies. */
function responses(buf: string): { statuses: number[]; bodies: string[] } {
  const all = parseResponses(buf);
  return { statuses: all.map((r) => r.status), bodies: all.map((r) => r.body) };
}

/**
 * Sends `bytes` on a new connection; resolves once the gateway closed it,
 * or `expected` responses arrived (a keep-alive connection stays open),
 * with a safety cap so a hung case fails on its assertions rather than the test timeout.
 */
function exchange(bytes: string, expected = 1): Promise<Outcome> {
  const { port } = new URL(gateway.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1');
    let buf = '';
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(cap);
      socket.destroy();
      resolve({ ...responses(buf), closed });
    };
    const cap = setTimeout(() => finish(false), 5000);
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      // Keep reading after the last expected response: a close may follow at once.
      if (responses(buf).statuses.length >= expected) setTimeout(() => finish(false), 300);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    socket.write(bytes);
  });
}

/** Waits until requests the upstream is still receiving are recorded. */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 100));

const SMUGGLED = 'GET /svc/SMUGGLED HTTP/1.1\r\nHost: x\r\n\r\n';
const chunked = (s: string): string => `${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`;

function expectRefused(out: Outcome, message: RegExp): void {
  expect(out.statuses).toEqual([400]);
  expect(JSON.parse(out.bodies[0]!)).toEqual({ error: { code: 'BAD_REQUEST', message: expect.stringMatching(message) } });
  expect(out.closed).toBe(true);
}

/**
 * A refused head followed by more bytes in the same read: uWS closes the
 * connection itself when a request follows one still unanswered, so the
 * answer is a 400 or none; the connection is closed either way.
 */
function expectRefusedOrClosed(out: Outcome, message: RegExp): void {
  expect(out.closed).toBe(true);
  if (out.statuses.length > 0) expectRefused(out, message);
}

describe('request smuggling through Content-Length and Transfer-Encoding', () => {
  it.each([
    ['0 then 38', `Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}`],
    ['38 then 0', `Content-Length: ${SMUGGLED.length}\r\nContent-Length: 0`],
    ['38 twice', `Content-Length: ${SMUGGLED.length}\r\nContent-Length: ${SMUGGLED.length}`],
  ])('answers 400 and closes for two Content-Lengths (%s); the upstream sees neither request', async (_name, lines) => {
    const out = await exchange(`POST /svc/outer HTTP/1.1\r\nHost: gw\r\n${lines}\r\n\r\n${SMUGGLED}`);
    await settle();
    expectRefusedOrClosed(out, /Content-Length/);
    expect(seen).toEqual([]);
  });

  it('answers exactly 400 and closes when nothing follows the refused head', async () => {
    expectRefused(await exchange('POST /svc/outer HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n'), /Content-Length is repeated/);
    expectRefused(await exchange('POST /svc/outer HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked, chunked\r\n\r\n'), /Transfer-Encoding/);
    await settle();
    expect(seen).toEqual([]);
  });

  it('answers 400 and closes for Transfer-Encoding other than a single chunked', async () => {
    for (const te of ['chunked, gzip', 'gzip, chunked', 'chunked, chunked']) {
      const out = await exchange(`POST /svc/outer HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: ${te}\r\n\r\n${chunked(SMUGGLED)}`);
      expectRefusedOrClosed(out, /Transfer-Encoding/);
    }
    const twice = await exchange(`POST /svc/outer HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`);
    expectRefusedOrClosed(twice, /Transfer-Encoding/);
    await settle();
    expect(seen).toEqual([]);
  });

  it.each([
    ['Content-Length then Transfer-Encoding', `Content-Length: ${5 + SMUGGLED.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`],
    ['Transfer-Encoding then Content-Length', `Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${chunked(SMUGGLED)}`],
    ['Transfer-Encoding gzip alone', `Transfer-Encoding: gzip\r\n\r\n${SMUGGLED}`],
    ['two Content-Lengths in one line', `Content-Length: 0, ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`],
  ])('closes the connection for %s, with 400 or without an answer (uWS refuses some itself); nothing reaches the upstream', async (_name, rest) => {
    const out = await exchange(`POST /svc/outer HTTP/1.1\r\nHost: gw\r\n${rest}`);
    await settle();
    expect(out.closed).toBe(true);
    expect(out.statuses.filter((s) => s !== 400)).toEqual([]);
    expect(seen).toEqual([]);
  });

  it('answers 400 for a Content-Length that is not a decimal number', async () => {
    const out = await exchange(`POST /svc/outer HTTP/1.1\r\nHost: gw\r\nContent-Length: +3\r\n\r\nabc`);
    await settle();
    if (out.statuses.length > 0) expectRefused(out, /Content-Length/);
    expect(out.closed).toBe(true);
    expect(seen).toEqual([]);
  });

  it('still forwards one body with one Content-Length, as a body', async () => {
    const out = await exchange(`POST /svc/outer HTTP/1.1\r\nHost: gw\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`);
    await settle();
    expect(out.statuses).toEqual([200]);
    expect(out.closed).toBe(false);
    expect(seen).toEqual([{ method: 'POST', url: '/svc/outer', body: SMUGGLED }]);
  });

  it('closes without forwarding the second of two pipelined requests (uWS 20.30 closes a connection that pipelines behind a pending answer)', async () => {
    const out = await exchange(`POST /svc/outer HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n${SMUGGLED}`, 2);
    await settle();
    expect(out.closed).toBe(true);
    expect(seen.map((r) => r.url)).not.toContain('/svc/SMUGGLED');
  });

  it('parses nothing after a refused head on a keep-alive connection', async () => {
    const { port } = new URL(gateway.url);
    const socket = connect(Number(port), '127.0.0.1');
    socket.on('error', () => undefined);
    let buf = '';
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    let wake: () => void = () => undefined;
    socket.on('data', (d: Buffer) => { buf += d.toString('latin1'); wake(); });
    socket.write('GET /svc/first HTTP/1.1\r\nHost: gw\r\n\r\n');
    while (responses(buf).statuses.length < 1) await new Promise<void>((resolve) => { wake = resolve; });
    socket.write(`POST /svc/outer HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`
      + 'GET /svc/after HTTP/1.1\r\nHost: gw\r\n\r\n');
    await closed;
    await settle();
    const statuses = responses(buf).statuses;
    expect(statuses[0]).toBe(200);
    expect(statuses.slice(1).filter((s) => s !== 400)).toEqual([]);
    expect(seen.map((r) => r.url)).toEqual(['/svc/first']);
  });
});

describe('Host and header values', () => {
  it('answers 400 and closes for a duplicated Host; the upstream sees nothing', async () => {
    const out = await exchange('GET /svc/a HTTP/1.1\r\nHost: a\r\nHost: evil.example\r\n\r\n');
    await settle();
    expectRefused(out, /Host/);
    expect(seen).toEqual([]);
  });

  it('forwards nothing with CR or NUL inside a header value', async () => {
    for (const value of ['a\rb', 'a\0b']) {
      const { port } = new URL(gateway.url);
      const socket = connect(Number(port), '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(`GET /svc/ctl HTTP/1.1\r\nHost: gw\r\nX-A: ${value}\r\n\r\n`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      socket.destroy();
    }
    await settle();
    expect(seen).toEqual([]);
  });

  it('keeps serving after refusing', async () => {
    await exchange('GET /svc/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n');
    const out = await exchange('GET /svc/fine HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(out.statuses).toEqual([200]);
    expect(seen.map((s) => s.url)).toEqual(['/svc/fine']);
  });
});

describe('random Content-Length / Transfer-Encoding / Host combinations', () => {
  it('either forwards exactly the one unambiguous reading or refuses and closes, forwarding nothing', async () => {
    const header = fc.oneof(
      fc.constantFrom(0, SMUGGLED.length, 3).map((n) => ['Content-Length', String(n)] as const),
      fc.constantFrom('chunked', 'gzip', 'chunked, gzip', 'identity', 'Chunked').map((v) => ['Transfer-Encoding', v] as const),
      fc.constantFrom('gw', 'evil.example').map((v) => ['Host', v] as const),
    );
    await fc.assert(fc.asyncProperty(
      fc.constantFrom('gw', 'other.example'),
      fc.array(header, { maxLength: 4 }),
      fc.nat(5),
      async (host, extra, at) => {
        seen = [];
        const lines: Array<readonly [string, string]> = [...extra];
        lines.splice(Math.min(at, lines.length), 0, ['Host', host]);
        const cls = lines.filter(([n]) => n === 'Content-Length').map(([, v]) => Number(v));
        const tes = lines.filter(([n]) => n === 'Transfer-Encoding').map(([, v]) => v);
        const hosts = lines.filter(([n]) => n === 'Host').length;
        const body = tes.length > 0 ? chunked(SMUGGLED) : SMUGGLED;
        const head = `POST /svc/outer HTTP/1.1\r\n${lines.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;

        // The one reading every conforming parser agrees on, when there is one.
        let expected: Seen[] | null = null;
        if (hosts === 1 && cls.length === 1 && tes.length === 0) {
          const n = cls[0]!;
          const rest = SMUGGLED.slice(n);
          // With 3 bytes of body, what follows is no request: uWS closes on it.
          if (n === 0) expected = [{ method: 'POST', url: '/svc/outer', body: '' }, { method: 'GET', url: '/svc/SMUGGLED', body: '' }];
          else if (rest === '') expected = [{ method: 'POST', url: '/svc/outer', body: SMUGGLED }];
        } else if (hosts === 1 && cls.length === 0 && tes.length === 1 && tes[0]!.toLowerCase() === 'chunked') {
          expected = [{ method: 'POST', url: '/svc/outer', body: SMUGGLED }];
        } else if (hosts === 1 && cls.length === 0 && tes.length === 0) {
          // No framing: no body, and the bytes after the head are the next request.
          expected = [{ method: 'POST', url: '/svc/outer', body: '' }, { method: 'GET', url: '/svc/SMUGGLED', body: '' }];
        }

        const out = await exchange(head + body, expected?.length ?? 1);
        await settle();
        if (expected !== null && expected.length === 1) {
          expect(seen).toEqual(expected);
          expect(out.statuses).toEqual([200]);
        } else if (expected !== null) {
          // Two requests pipelined: uWS 20.30 closes the connection instead of
          // queueing the second; never more than the reading says, in order.
          expect(expected.slice(0, seen.length)).toEqual(seen);
          if (seen.length < expected.length) expect(out.closed).toBe(true);
        } else if (cls.length === 1 && cls[0] === 3 && hosts === 1 && tes.length === 0) {
          // One request with a 3-byte body; the rest is garbage uWS closes on (aborting the first).
          expect(out.closed).toBe(true);
          expect([{ method: 'POST', url: '/svc/outer', body: SMUGGLED.slice(0, 3) }].slice(0, seen.length)).toEqual(seen);
        } else {
          // Ambiguous: refused (400 and close, or uWS closing on its own), nothing forwarded.
          expect(seen).toEqual([]);
          expect(out.closed).toBe(true);
          expect(out.statuses.filter((s) => s !== 400)).toEqual([]);
        }
      },
    ), { numRuns: 40 });
  });
});

describe('encoded slashes and backslashes in the path', () => {
  it('refuses /public/..%2fadmin/secret with 400 when /admin/* needs a JWT and /public/* is open; the upstream is never contacted', async () => {
    const before = seen.length;
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${upstreamUrl}"] }
routes:
  - path: /admin/*
    service: api
    auth: { mode: required, secret: "integration-secret-at-least-32-bytes-long!" }
  - path: /public/*
    service: api
`);
    try {
      const { port } = new URL(gw.url);
      for (const path of ['/public/..%2fadmin/secret', '/public/..%2Fadmin/secret', '/public/..%5cadmin/secret', '/public/..%5Cadmin/secret', '/public/%2e%2e%2fadmin/secret', '/public/x%2Fy']) {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        expect(res.status, path).toBe(400);
        expect(await res.json()).toEqual({ error: { code: 'BAD_REQUEST', message: expect.stringMatching(/encoded slash/) } });
      }
      // A raw backslash, which fetch would turn into a slash.
      const raw = await new Promise<string>((resolve) => {
        const socket = connect(Number(port), '127.0.0.1');
        let buf = '';
        socket.on('data', (d: Buffer) => { buf += d.toString('latin1'); if (buf.includes('}')) { socket.destroy(); resolve(buf); } });
        socket.on('error', () => resolve(buf));
        socket.on('close', () => resolve(buf));
        socket.write('GET /public/..\\admin/secret HTTP/1.1\r\nHost: gw\r\n\r\n');
      });
      expect(raw).toMatch(/^HTTP\/1\.1 (400|404)/);
      expect((await fetch(`http://127.0.0.1:${port}/public/ok`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/admin/secret`)).status).toBe(401);
      await settle();
      expect(seen.slice(before).map((s) => s.url)).toEqual(['/public/ok']);
    } finally {
      await gw.close();
    }
  });

  it('forwards them as received on a route with encodedSlashes: keep', async () => {
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${upstreamUrl}"] }
routes:
  - path: /files/*
    service: api
    encodedSlashes: keep
  - path: /public/*
    service: api
`);
    try {
      const { port } = new URL(gw.url);
      expect((await fetch(`http://127.0.0.1:${port}/files/a%2Fb%5Cc`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${port}/public/a%2Fb`)).status).toBe(400);
      await settle();
      expect(seen.map((s) => s.url)).toEqual(['/files/a%2Fb%5Cc']);
    } finally {
      await gw.close();
    }
  });
});
