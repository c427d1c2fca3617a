import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { openSocket, patternChunk, readUntil } from '../support/http.ts';
import { startGateway, startUpstream, type TestUpstream } from '../support/servers.ts';

const MB = 1024 * 1024;
/** Generous: these wait for sockets to close, which a loaded machine may take a while to report. */
const WAIT = { timeout: 5_000 };

/** What the upstream saw of one exchange. */
interface Exchange {
  url: string;
  received: number;
  /** The request body ended normally. */
  bodyEnded: boolean;
  /** The connection went away before the response finished. */
  closedEarly: boolean;
}

let upstream: TestUpstream;
let gateway: Gateway & { url: string };
let exchanges: Exchange[];
let handle: (req: IncomingMessage, res: ServerResponse, ex: Exchange) => void;

beforeEach(async () => {
  exchanges = [];
  upstream = await startUpstream((req, res) => {
    const ex: Exchange = { url: req.url!, received: 0, bodyEnded: false, closedEarly: false };
    exchanges.push(ex);
    req.on('data', (d: Buffer) => { ex.received += d.length; });
    req.on('end', () => { ex.bodyEnded = true; });
    res.on('close', () => { if (!res.writableFinished) ex.closedEarly = true; });
    if (req.url === '/ok') {
      req.resume();
      res.end('still here');
      return;
    }
    handle(req, res, ex);
  });
  const service = new Service('up', { upstreams: [upstream.url] });
  gateway = await startGateway([{ path: '/*', handler: forward(service) }], { services: [service], publicMetrics: true });
});

afterEach(async () => {
  await gateway.close();
  await upstream.close();
});

async function expectGatewayServes(): Promise<void> {
  const res = await request(`${gateway.url}/ok`);
  expect(res.statusCode).toBe(200);
  expect(await res.body.text()).toBe('still here');
}

async function clientAborts(): Promise<number> {
  const res = await request(`${gateway.url}/__rxgate/metrics`);
  const text = await res.body.text();
  const m = /^rxgate_client_aborts_total (\d+)/m.exec(text);
  return m === null ? 0 : Number(m[1]);
}

describe('client aborts', () => {
  it('tears down the upstream request when the client goes away mid-upload, and keeps serving', async () => {
    handle = () => undefined; // never answers: the body is still flowing when the client leaves
    const client = await openSocket(gateway.url);
    client.write(`POST /upload HTTP/1.1\r\nHost: gw\r\nContent-Length: ${20 * MB}\r\n\r\n`);
    for (let i = 0; i < 16; i++) client.write(patternChunk(i, 64 * 1024));
    await vi.waitFor(() => expect(exchanges[0]?.received ?? 0).toBeGreaterThan(0), WAIT);
    client.destroy();

    await vi.waitFor(() => expect(exchanges[0]!.closedEarly).toBe(true), WAIT);
    expect(exchanges[0]!.bodyEnded).toBe(false);
    expect(exchanges[0]!.received).toBeLessThan(20 * MB);
    await expectGatewayServes();
    await vi.waitFor(async () => expect(await clientAborts()).toBe(1), WAIT);
  });

  it('tears down the upstream response when the client goes away mid-download, and keeps serving', async () => {
    handle = (req, res) => {
      req.resume();
      res.setHeader('content-length', String(10 * MB));
      res.write('first bytes;');
      // …and nothing more until the connection goes away.
    };
    const client = await openSocket(gateway.url);
    client.write('GET /download HTTP/1.1\r\nHost: gw\r\n\r\n');
    await readUntil(client, 'first bytes;');
    client.destroy();

    await vi.waitFor(() => expect(exchanges[0]!.closedEarly).toBe(true), WAIT);
    await expectGatewayServes();
    await vi.waitFor(async () => expect(await clientAborts()).toBe(1), WAIT);
  });

  it('tears down a chunked download when the client goes away mid-body', async () => {
    handle = (req, res) => {
      req.resume();
      res.write('first bytes;');
    };
    const client = await openSocket(gateway.url);
    client.write('GET /chunked HTTP/1.1\r\nHost: gw\r\n\r\n');
    await readUntil(client, 'first bytes;');
    client.destroy();

    await vi.waitFor(() => expect(exchanges[0]!.closedEarly).toBe(true), WAIT);
    await expectGatewayServes();
  });

  it('cancels the upstream request when the client goes away before the response head', async () => {
    handle = (req) => req.resume(); // never answers
    const client = await openSocket(gateway.url);
    client.write('GET /slow HTTP/1.1\r\nHost: gw\r\n\r\n');
    await vi.waitFor(() => expect(exchanges).toHaveLength(1), WAIT);
    client.destroy();

    await vi.waitFor(() => expect(exchanges[0]!.closedEarly).toBe(true), WAIT);
    await expectGatewayServes();
  });

  it('survives 50 clients closing mid-response at once and serves the next requests', async () => {
    const n = 50;
    handle = (req, res) => {
      req.resume();
      res.setHeader('content-length', String(MB));
      res.write(`chunk of ${req.url};`);
    };
    const clients = await Promise.all(Array.from({ length: n }, () => openSocket(gateway.url)));
    await Promise.all(clients.map((c, i) => {
      c.write(`GET /many/${i} HTTP/1.1\r\nHost: gw\r\n\r\n`);
      return readUntil(c, `chunk of /many/${i};`);
    }));
    for (const c of clients) c.destroy();

    await vi.waitFor(() => {
      expect(exchanges.filter((e) => e.url.startsWith('/many/'))).toHaveLength(n);
      expect(exchanges.every((e) => e.url === '/ok' || e.closedEarly)).toBe(true);
    }, WAIT);
    for (let i = 0; i < 3; i++) await expectGatewayServes();
    const health = await request(`${gateway.url}/__rxgate/health`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    await vi.waitFor(async () => expect(await clientAborts()).toBe(n), WAIT);
  });
});
