import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { openSocket, readBody, readUntil } from '../support/http.ts';
import { startGateway, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * Many exchanges at once on the uWS side: each owns its response, its
 * request body and its place in the shared end-of-tick head flush.
 */

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

describe('exchanges', () => {
  it.each([
    ['content-length', true],
    ['chunked', false],
  ])('sends each response head at the end of its tick when the upstream holds the body back (%s)', async (_name, withLength) => {
    const held: ServerResponse[] = [];
    handle = (req, res) => {
      req.resume();
      res.writeHead(200, withLength ? { 'content-length': '4' } : {});
      res.flushHeaders();
      held.push(res);
    };
    const clients = await Promise.all([0, 1, 2].map(() => openSocket(gateway.url)));
    try {
      const heads = await Promise.all(clients.map((c, i) => {
        c.write(`GET /held/${i} HTTP/1.1\r\nHost: gw\r\n\r\n`);
        // uWS closes the head (Date, Content-Length or Transfer-Encoding) with the first body bytes.
        return readUntil(c, 'x-request-id: ');
      }));
      for (const h of heads) expect(h.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      const bodies = clients.map((c) => readUntil(c, withLength ? 'body' : '0\r\n\r\n'));
      for (const res of held) res.end('body');
      for (const b of await Promise.all(bodies)) expect(b.toString('latin1')).toContain('body');
    } finally {
      for (const c of clients) c.destroy();
    }
  });

  it('keeps concurrent uploads and downloads apart: each client gets its own bytes back', async () => {
    handle = (req, res) => {
      void readBody(req).then((body) => {
        if (req.headers['x-chunked'] === '1') {
          res.write(body.slice(0, 3));
          setImmediate(() => res.end(body.slice(3)));
        } else {
          res.setHeader('content-length', String(Buffer.byteLength(body)));
          res.end(body);
        }
      });
    };
    const n = 40;
    const answers = await Promise.all(Array.from({ length: n }, async (_, i) => {
      const sent = `client ${i}: ` + 'x'.repeat(i * 997);
      const res = await request(`${gateway.url}/echo/${i}`, {
        method: 'POST', body: sent, headers: { 'x-chunked': i % 2 === 0 ? '1' : '0' },
      });
      return { sent, status: res.statusCode, got: await res.body.text() };
    }));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.got).toBe(a.sent);
    }
  });
});
