import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { header, RawConnection, type RawResponse } from '../support/http.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * HEAD on a `compression` route gets the head its GET gets (RFC 9110
 * §9.3.2; nginx's gzip does the same): `Content-Encoding`, `Vary`, a weak
 * `ETag`, no `Content-Length` (what the GET would send is not known before
 * compressing it), and no body. Read over one raw keep-alive connection, so
 * a stray body or a wrong length breaks the next response.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const json = Buffer.from(JSON.stringify(Array.from({ length: 500 }, (_, i) => ({ id: i, name: `item ${i}` }))));

/** The upstream answers HEAD as GET without the body (node:http leaves the body out itself). */
function sendJson(req: IncomingMessage, res: ServerResponse): void {
  req.resume();
  res.setHeader('content-type', req.url === '/png' ? 'image/png' : 'application/json');
  res.setHeader('etag', '"v1"');
  res.setHeader('accept-ranges', 'bytes');
  res.setHeader('content-length', String(req.url === '/small' ? 10 : json.length));
  res.end(req.url === '/small' ? json.subarray(0, 10) : json);
}

async function gateway(route = 'compression: true', handler = sendJson): Promise<RawConnection> {
  const up = await startUpstream(handler);
  cleanups.push(() => up.close());
  const gw = await startGatewayFromYaml(`
services: { s: { upstreams: ["${up.url}"] } }
routes:
  - { path: /*, service: s, ${route} }
`);
  cleanups.push(() => gw.close());
  const conn = await RawConnection.open(gw.url);
  cleanups.push(async () => conn.close());
  return conn;
}

/** The header lines a client reads as the representation's, without the per-answer ones. */
function representation(res: RawResponse): Record<string, string | undefined> {
  const names = ['content-type', 'content-encoding', 'content-length', 'vary', 'etag', 'accept-ranges'];
  return Object.fromEntries(names.map((n) => [n, header(res, n)]));
}

async function getAndHead(conn: RawConnection, path: string, accept: string | null): Promise<{ get: RawResponse; head: RawResponse }> {
  const ae = accept === null ? '' : `Accept-Encoding: ${accept}\r\n`;
  const get = await conn.request(`GET ${path} HTTP/1.1\r\nHost: gw\r\n${ae}\r\n`);
  const head = await conn.request(`HEAD ${path} HTTP/1.1\r\nHost: gw\r\n${ae}\r\n`, { noBody: true });
  return { get, head };
}

describe('HEAD on a compression route', () => {
  it.each(['gzip', 'br'])('gets the head a GET accepting %s gets: Content-Encoding, Vary, weak ETag, no Content-Length, no body', async (coding) => {
    const conn = await gateway();
    const { get, head } = await getAndHead(conn, '/items', coding);
    expect(get.headerLines.find(([n]) => n === 'content-encoding')?.[1]).toBe(coding);
    expect(head.status).toBe(200);
    expect(representation(head)).toEqual(representation(get));
    expect(representation(head)).toMatchObject({ 'content-encoding': coding, vary: 'Accept-Encoding', etag: 'W/"v1"', 'content-length': undefined, 'accept-ranges': undefined });
    // No body came after the HEAD's head: the next response on the connection parses from its first byte.
    expect(conn.pending.length).toBe(0);
    const again = await conn.request(`GET /items HTTP/1.1\r\nHost: gw\r\n\r\n`);
    expect(again.status).toBe(200);
    expect(again.body.equals(json)).toBe(true);
  });

  it('gets Vary and the length a GET gets when the client accepts no coding', async () => {
    const conn = await gateway();
    const { get, head } = await getAndHead(conn, '/items', null);
    expect(representation(head)).toEqual(representation(get));
    expect(representation(head)).toMatchObject({ vary: 'Accept-Encoding', 'content-length': String(json.length), 'content-encoding': undefined, etag: '"v1"' });
  });

  it('is left alone where the GET is: a type not compressed, and a length under minSize', async () => {
    const conn = await gateway();
    for (const path of ['/png', '/small']) {
      const { get, head } = await getAndHead(conn, path, 'gzip');
      expect(representation(head)).toEqual(representation(get));
      expect(header(head, 'content-encoding')).toBeUndefined();
      expect(header(head, 'vary')).toBeUndefined();
    }
  });

  it('drops Accept-Encoding upstream for HEAD too with removeAcceptEncoding', async () => {
    const seen: Array<string | undefined> = [];
    const conn = await gateway('compression: { removeAcceptEncoding: true }', (req, res) => {
      seen.push(req.headers['accept-encoding']);
      sendJson(req, res);
    });
    const { get, head } = await getAndHead(conn, '/items', 'gzip');
    expect(seen).toEqual([undefined, undefined]);
    expect(representation(head)).toEqual(representation(get));
  });

  it('answers HEAD from a cached GET with the GET\'s compressed head', async () => {
    const conn = await gateway('compression: true, cache: { ttl: 1m }');
    const { get, head } = await getAndHead(conn, '/items', 'gzip');
    expect(representation(head)).toEqual(representation(get));
    expect(header(head, 'content-encoding')).toBe('gzip');
    expect(conn.pending.length).toBe(0);
  });
});
