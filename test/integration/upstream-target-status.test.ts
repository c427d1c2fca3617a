import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { rawRequest } from '../support/http.ts';
import { startRawUpstream, type RawAnswer, type RawUpstream } from '../support/raw-http.ts';
import { startGateway } from '../support/servers.ts';

let raw: RawUpstream;
let gateway: Gateway & { url: string };

async function start(answer?: RawAnswer): Promise<void> {
  raw = await startRawUpstream(answer);
  const service = new Service('raw', { upstreams: [raw.url] });
  gateway = await startGateway([{ path: '/*', handler: forward(service) }], { services: [service] });
}

afterEach(async () => {
  await gateway.close();
  await raw.close();
});

/** The request line the upstream received. */
const target = (i = 0): string => raw.requests[i]!.target;

describe('the request target sent upstream', () => {
  it('keeps the ? of an empty query, as nginx and Envoy forward the target as sent', async () => {
    await start();
    const res = await rawRequest(gateway.url, 'GET /x? HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(res.status).toBe(200);
    expect(target()).toBe('/x?');
  });

  it('sends no ? for a target without one', async () => {
    await start();
    await rawRequest(gateway.url, 'GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(target()).toBe('/x');
  });

  it('keeps a query that is a lone ? after the ?', async () => {
    await start();
    await rawRequest(gateway.url, 'GET /x?? HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(target()).toBe('/x??');
  });
});

describe('an upstream status outside 100-599', () => {
  for (const line of ['HTTP/1.1 600 X', 'HTTP/1.1 099 X', 'HTTP/1.1 999 X']) {
    it(`answers 502 BAD_GATEWAY for "${line}" instead of passing it through`, async () => {
      await start((socket) => socket.write(`${line}\r\ncontent-length: 2\r\n\r\nok`));
      const res = await rawRequest(gateway.url, 'GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
      expect(res.status).toBe(502);
      expect(JSON.parse(res.body.toString())).toEqual({ error: { code: 'BAD_GATEWAY', message: 'upstream sent an invalid status' } });
    });
  }

  it('passes a 599 through with its body', async () => {
    await start((socket) => socket.write('HTTP/1.1 599 Odd\r\ncontent-length: 2\r\n\r\nok'));
    const res = await rawRequest(gateway.url, 'GET /x HTTP/1.1\r\nHost: gw\r\n\r\n');
    expect(res.status).toBe(599);
    expect(res.body.toString()).toBe('ok');
  });
});
