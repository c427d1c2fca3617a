import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { HAS_ZSTD } from '../../lib/stages/compression/compressed-body.ts';
import { digestStream, openSocket, patternChunk, patternDigest } from '../support/http.ts';
import { expectReadingStops, producer } from '../support/backpressure.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * Response compression through a real gateway built from YAML: each coding
 * decompressed and compared byte for byte, the cases left alone (no-transform,
 * SSE, small bodies, bodies the upstream encoded), HEAD, the cache keeping
 * the identity body, and backpressure through the compressor on a large
 * streamed body.
 */

const MB = 1024 * 1024;
const CHUNK = 64 * 1024;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

let hits = 0;
async function setup(handler: (req: IncomingMessage, res: ServerResponse) => void, route = 'compression: true'): Promise<string> {
  hits = 0;
  const up = await startUpstream((req, res) => {
    hits++;
    req.resume();
    handler(req, res);
  });
  cleanups.push(() => up.close());
  const gw = await startGatewayFromYaml(`
services: { s: { upstreams: ["${up.url}"] } }
routes:
  - { path: /*, service: s, ${route} }
`);
  cleanups.push(() => gw.close());
  return gw.url;
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET') {
  const res = await request(url, { method, headers, headersTimeout: 5000, bodyTimeout: 10_000 });
  return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
}

const json = Buffer.from(JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'] }))));

function sendJson(_req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('content-type', 'application/json');
  res.setHeader('etag', '"v1"');
  res.setHeader('content-length', String(json.length));
  res.end(json);
}

describe('compression from YAML', () => {
  it.each([
    ['gzip', (b: Buffer) => zlib.gunzipSync(b)],
    ['br', (b: Buffer) => zlib.brotliDecompressSync(b)],
  ] as const)('compresses with %s for a client that accepts it, and the bytes come back the same', async (coding, decode) => {
    const url = await setup(sendJson);
    const res = await get(`${url}/items`, { 'accept-encoding': coding === 'gzip' ? 'gzip, deflate' : 'gzip;q=0.5, br' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe(coding);
    expect(res.headers.vary).toBe('Accept-Encoding');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers.etag).toBe('W/"v1"');
    expect(res.body.length).toBeLessThan(json.length / 4);
    expect(decode(res.body).equals(json)).toBe(true);
  });

  it.skipIf(!HAS_ZSTD)('compresses with zstd where node:zlib has it (Node 22.15+), when offered', async () => {
    const url = await setup(sendJson, 'compression: { encodings: [zstd, br, gzip] }');
    const res = await get(`${url}/items`, { 'accept-encoding': 'gzip, br, zstd' });
    expect(res.headers['content-encoding']).toBe('zstd');
    const decode = (zlib as unknown as { zstdDecompressSync(b: Buffer): Buffer }).zstdDecompressSync;
    expect(decode(res.body).equals(json)).toBe(true);
  });

  it.skipIf(HAS_ZSTD)('offers the other codings when zstd is listed on a Node without it', async () => {
    const url = await setup(sendJson, 'compression: { encodings: [zstd, gzip] }');
    const res = await get(`${url}/items`, { 'accept-encoding': 'zstd, gzip' });
    expect(res.headers['content-encoding']).toBe('gzip');
  });

  it('sends identity with Vary to a client that accepts no offered coding', async () => {
    const url = await setup(sendJson);
    for (const accept of [undefined, 'identity', 'deflate', 'gzip;q=0']) {
      const res = await get(`${url}/items`, accept === undefined ? {} : { 'accept-encoding': accept });
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(res.headers.vary).toBe('Accept-Encoding');
      expect(res.headers['content-length']).toBe(String(json.length));
      expect(res.body.equals(json)).toBe(true);
    }
  });

  it('sends Vary: Accept-Encoding on a 304 to a client holding the compressed 200 whose weak ETag the upstream made (RFC 9110 §15.4.5)', async () => {
    // Express's default: weak tags. The compressed 200 keeps W/"w1" and gets Vary; the 304 for it had none.
    const url = await setup((req, res) => {
      if (req.headers['if-none-match']?.includes('W/"w1"') === true) {
        res.writeHead(304, { etag: 'W/"w1"' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', etag: 'W/"w1"', 'content-length': String(json.length) }).end(json);
    });
    const full = await get(`${url}/items`, { 'accept-encoding': 'gzip' });
    expect([full.status, full.headers.etag, full.headers.vary, full.headers['content-encoding']]).toEqual([200, 'W/"w1"', 'Accept-Encoding', 'gzip']);
    const again = await get(`${url}/items`, { 'accept-encoding': 'gzip', 'if-none-match': 'W/"w1"' });
    expect([again.status, again.headers.etag, again.headers.vary]).toEqual([304, 'W/"w1"', 'Accept-Encoding']);
  });

  it('sends no Vary on a weak 304 whose Content-Type or no-transform says the 200 was never compressed', async () => {
    const url = await setup((req, res) => {
      const head = req.url === '/png' ? { 'content-type': 'image/png' } : { 'cache-control': 'no-transform' };
      res.writeHead(304, { etag: 'W/"w1"', ...head }).end();
    });
    for (const path of ['/png', '/nt']) {
      const res = await get(`${url}${path}`, { 'accept-encoding': 'gzip', 'if-none-match': 'W/"w1"' });
      expect([path, res.status, res.headers.vary]).toEqual([path, 304, undefined]);
    }
  });

  it('leaves Cache-Control: no-transform responses alone', async () => {
    const url = await setup((req, res) => {
      res.setHeader('cache-control', 'public, no-transform');
      sendJson(req, res);
    });
    const res = await get(`${url}/items`, { 'accept-encoding': 'gzip, br' });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers.etag).toBe('"v1"');
    expect(res.body.equals(json)).toBe(true);
  });

  it('leaves event streams alone, event by event', async () => {
    const url = await setup((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      setTimeout(() => res.end(`data: ${'x'.repeat(4000)}\n\n`), 50);
    });
    const res = await get(`${url}/events`, { 'accept-encoding': 'gzip, br' });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.body.toString()).toMatch(/^data: one\n\ndata: x+\n\n$/);
  });

  it('leaves bodies under minSize alone (no Vary: they never vary)', async () => {
    const url = await setup((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.end('small body');
    });
    const res = await get(`${url}/small`, { 'accept-encoding': 'gzip' });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers.vary).toBeUndefined();
    expect(res.body.toString()).toBe('small body');
  });

  it('passes a body the upstream already encoded as it is', async () => {
    const encoded = zlib.gzipSync(json);
    const url = await setup((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': String(encoded.length) });
      res.end(encoded);
    });
    const res = await get(`${url}/items`, { 'accept-encoding': 'br, gzip' });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.body.equals(encoded)).toBe(true);
  });

  it('leaves images alone, and gives HEAD the head its GET gets (compression-head.test.ts)', async () => {
    const url = await setup((req, res) => {
      res.setHeader('content-type', req.url === '/png' ? 'image/png' : 'application/json');
      res.setHeader('content-length', String(json.length));
      res.end(req.method === 'HEAD' ? undefined : json);
    });
    expect((await get(`${url}/png`, { 'accept-encoding': 'gzip' })).headers['content-encoding']).toBeUndefined();
    const head = await get(`${url}/items`, { 'accept-encoding': 'gzip' }, 'HEAD');
    expect(head.headers['content-encoding']).toBe('gzip');
    expect(head.headers['content-length']).toBeUndefined();
  });

  it('drops Accept-Encoding upstream with removeAcceptEncoding, and still compresses for the client', async () => {
    const seen: Array<string | undefined> = [];
    const url = await setup((req, res) => {
      seen.push(req.headers['accept-encoding']);
      sendJson(req, res);
    }, 'compression: { removeAcceptEncoding: true, encodings: [gzip] }');
    const res = await get(`${url}/items`, { 'accept-encoding': 'gzip, br' });
    expect(seen).toEqual([undefined]);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(res.body).equals(json)).toBe(true);
  });

  it('compresses a chunked body of unknown length whatever its size', async () => {
    const url = await setup((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      res.write('tiny ');
      res.end('chunked');
    });
    const res = await get(`${url}/chunked`, { 'accept-encoding': 'gzip' });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(res.body).toString()).toBe('tiny chunked');
  });

  it('keeps the identity body in the cache and compresses it per client', async () => {
    const url = await setup(sendJson, 'compression: true, cache: { ttl: 1m }');
    const br = await get(`${url}/items`, { 'accept-encoding': 'br' });
    const plain = await get(`${url}/items`);
    const gz = await get(`${url}/items`, { 'accept-encoding': 'gzip' });
    expect(hits).toBe(1);
    expect(zlib.brotliDecompressSync(br.body).equals(json)).toBe(true);
    expect(plain.body.equals(json)).toBe(true);
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(zlib.gunzipSync(gz.body).equals(json)).toBe(true);
  });

  it('streams a 16 MB chunked body through gzip byte-exact', async () => {
    const total = 16 * MB;
    const url = await setup((_req, res) => {
      res.setHeader('content-type', 'text/plain');
      let i = 0;
      Readable.from((function* () { for (let sent = 0; sent < total; sent += CHUNK) yield patternChunk(i++, CHUNK); })()).pipe(res);
    });
    const res = await request(`${url}/big`, { headers: { 'accept-encoding': 'gzip' }, headersTimeout: 5000, bodyTimeout: 20_000 });
    expect(res.headers['content-encoding']).toBe('gzip');
    const digest = await digestStream(res.body.pipe(zlib.createGunzip()));
    expect(digest).toEqual(patternDigest(total, CHUNK));
  });

  it('stops reading from the upstream while the client does not read a compressed body', async () => {
    // Pattern chunks are random bytes: the compressed stream is as large, and a compressor that buffered would take all 256 MB.
    const { state, handler } = producer(256 * MB);
    const url = await setup((req, res) => {
      res.setHeader('content-type', 'text/plain');
      handler(req, res);
    });
    const client = await openSocket(url);
    client.pause();
    client.write('GET /big HTTP/1.1\r\nHost: gw\r\nAccept-Encoding: gzip\r\n\r\n');
    // Once the client is gone, the compressor and the upstream response are torn down.
    await expectReadingStops(state, client, { timeout: 15_000, interval: 150 });
  });
});
