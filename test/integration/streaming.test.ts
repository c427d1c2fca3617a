import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { digestStream, openSocket, patternChunk, patternStream, patternDigest } from '../support/http.ts';
import { expectReadingStops, producer } from '../support/backpressure.ts';
import { startGateway, startUpstream, type TestUpstream } from '../support/servers.ts';

const MB = 1024 * 1024;
const CHUNK = 64 * 1024;

let upstream: TestUpstream;
let gateway: Gateway & { url: string };
let handle: (req: IncomingMessage, res: ServerResponse) => void;

beforeEach(async () => {
  upstream = await startUpstream((req, res) => handle(req, res));
  const service = new Service('up', { upstreams: [upstream.url] });
  gateway = await startGateway([{ path: '/*', handler: forward(service) }], { services: [service] });
});

afterEach(async () => {
  await gateway.close();
  await upstream.close();
});

/** Upstream handler that hashes the request body and answers with the digest as JSON. */
function hashRequestBody(req: IncomingMessage, res: ServerResponse): void {
  void digestStream(req).then((d) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ...d, contentLength: req.headers['content-length'] ?? null, transferEncoding: req.headers['transfer-encoding'] ?? null }));
  });
}

describe('streaming request bodies', () => {
  it('streams a 50 MB upload with content-length to the upstream byte-exact', async () => {
    handle = hashRequestBody;
    const total = 50 * MB;
    const res = await request(`${gateway.url}/upload`, {
      method: 'POST', body: patternStream(total), headers: { 'content-length': String(total) },
    });
    expect(res.statusCode).toBe(200);
    const got = await res.body.json() as { sha256: string; length: number; contentLength: string | null };
    expect(got.length).toBe(total);
    expect(got.sha256).toBe(patternDigest(total, CHUNK).sha256);
    expect(got.contentLength).toBe(String(total));
  });

  it('streams a chunked upload of unknown length to the upstream byte-exact', async () => {
    handle = hashRequestBody;
    const total = 8 * MB + 123;
    const res = await request(`${gateway.url}/upload`, { method: 'POST', body: patternStream(total) });
    expect(res.statusCode).toBe(200);
    const got = await res.body.json() as { sha256: string; length: number; transferEncoding: string | null };
    expect(got).toMatchObject({ length: total, sha256: patternDigest(total, CHUNK).sha256, transferEncoding: 'chunked' });
  });
});

describe('streaming response bodies', () => {
  it('streams a 50 MB download with content-length to the client byte-exact', async () => {
    const total = 50 * MB;
    handle = (_req, res) => {
      res.setHeader('content-length', String(total));
      patternStream(total).pipe(res);
    };
    const res = await request(`${gateway.url}/download`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(total));
    expect(await digestStream(res.body)).toEqual(patternDigest(total, CHUNK));
  });

  it('streams a chunked download of unknown length to the client byte-exact', async () => {
    const total = 8 * MB + 7;
    handle = (_req, res) => patternStream(total, 4000).pipe(res);
    const res = await request(`${gateway.url}/download`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(await digestStream(res.body)).toEqual(patternDigest(total, 4000));
  });
});

describe('backpressure', () => {
  it.each([
    ['content-length', true],
    ['chunked', false],
  ])('stops reading from the upstream while the client does not read (%s)', async (_name, withLength) => {
    const { state, handler } = producer(256 * MB, { withLength });
    handle = handler;
    const client = await openSocket(gateway.url);
    // The client reads nothing: its receive window fills and the gateway must stop too.
    client.pause();
    client.write('GET /big HTTP/1.1\r\nHost: gw\r\n\r\n');
    await expectReadingStops(state, client, { timeout: 10_000, interval: 100 });
  });

  it('stops reading the client\'s upload while the upstream does not read', async () => {
    let upstreamReq: IncomingMessage | undefined;
    handle = (req) => {
      // The upstream never reads: its window fills, then the gateway's, then the client's.
      upstreamReq = req;
      req.pause();
    };
    const client = await openSocket(gateway.url);
    const total = 256 * MB;
    client.write(`POST /slow-sink HTTP/1.1\r\nHost: gw\r\nContent-Length: ${total}\r\n\r\n`);
    let sent = 0;
    let i = 0;
    let blocked = false;
    const pump = (): void => {
      while (sent < total) {
        const ok = client.write(patternChunk(i++, CHUNK));
        sent += CHUNK;
        if (!ok) {
          blocked = true;
          client.once('drain', () => {
            blocked = false;
            pump();
          });
          return;
        }
      }
    };
    try {
      pump();
      let last = -1;
      await vi.waitFor(() => {
        const stalled = blocked && sent === last;
        last = sent;
        expect(stalled).toBe(true);
      }, { timeout: 10_000, interval: 100 });
      expect(upstreamReq).toBeDefined();
      expect(sent).toBeLessThan(64 * MB);
    } finally {
      client.destroy();
    }
  });
});
