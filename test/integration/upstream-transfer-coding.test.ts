import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { rawRequest } from '../support/http.ts';
import { startRawUpstream, type RawUpstream } from '../support/raw-http.ts';
import { startGateway } from '../support/servers.ts';

/**
 * An upstream `Transfer-Encoding` other than `chunked`: undici decodes only
 * `chunked`, and the gateway re-frames the body, so `gzip, chunked` would
 * reach the client as gzip bytes with no coding named. It is a 502, as
 * nginx's "upstream sent unknown Transfer-Encoding" (second black-box
 * audit, finding 10).
 */

let raw: RawUpstream;
let gateway: Gateway & { url: string };

async function start(head: string, body: string, close = false): Promise<void> {
  raw = await startRawUpstream((socket) => {
    socket.write(`HTTP/1.1 200 OK\r\n${head}\r\n\r\n${body}`);
    if (close) socket.end();
  });
  const service = new Service('raw', { upstreams: [raw.url] });
  gateway = await startGateway([{ path: '/*', handler: forward(service) }], { services: [service] });
}

afterEach(async () => {
  await gateway.close();
  await raw.close();
});

const get = (): ReturnType<typeof rawRequest> => rawRequest(gateway.url, 'GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');

describe('an upstream transfer coding undici cannot decode', () => {
  for (const [head, body, close] of [
    ['Transfer-Encoding: gzip, chunked', '2\r\nok\r\n0\r\n\r\n', false],
    ['Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked', '2\r\nok\r\n0\r\n\r\n', false],
    ['Transfer-Encoding: gzip', 'ok', true],
  ] as const) {
    it(`answers 502 BAD_GATEWAY to ${JSON.stringify(head)} instead of passing the coded bytes off as identity`, async () => {
      await start(head, body, close);
      const res = await get();
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body.toString())).toEqual({ error: { code: 'BAD_GATEWAY', message: 'upstream sent unknown Transfer-Encoding' } });
    });
  }

  for (const te of ['chunked', 'Chunked']) {
    it(`relays a body framed by Transfer-Encoding: ${te}`, async () => {
      await start(`Transfer-Encoding: ${te}`, '2\r\nok\r\n0\r\n\r\n');
      const res = await get();
      expect([res.status, res.body.toString()]).toEqual([200, 'ok']);
    });
  }
});
