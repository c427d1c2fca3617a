import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * A request whose Connection value asks to close among other tokens
 * (`keep-alive, close`, `close, te`): uWS 20.30 recognises only the 5-byte
 * `close`, so rxgate writes `connection: close` and must close the
 * connection itself, or a request the client sends later on it is served
 * (RFC 9112 §9.6; review RA4, D3). Here the answers that end with their head.
 */

let up: TestUpstream;
let gw: Gateway & { url: string };
const seen: string[] = [];

beforeAll(async () => {
  up = await startUpstream((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    if (req.url === '/p/204') res.writeHead(204).end();
    else if (req.url === '/p/304') res.writeHead(304, { etag: '"a"' }).end();
    else if (req.url === '/p/empty') res.writeHead(200, { 'content-length': '0' }).end();
    else res.end('hello');
  });
  gw = await startGatewayFromYaml(`
services: { up: { upstreams: ["${up.url}"], retry: false, circuitBreaker: false } }
routes: [ { path: /p/*, service: up } ]
`);
});

afterAll(async () => {
  await gw.close();
  await up.close();
});

/** Sends `head`, waits for its answer, then (unless closed by then) a POST: what came back and whether the connection closed before a second answer. */
async function closesAfter(head: string): Promise<{ text: string; closed: boolean }> {
  const s = connect(Number(new URL(gw.url).port), '127.0.0.1');
  let text = '';
  let closed = false;
  s.on('data', (d: Buffer) => { text += d.toString('latin1'); });
  s.on('error', () => {});
  const ended = new Promise<void>((r) => s.on('close', () => { closed = true; r(); }));
  await new Promise((r) => s.on('connect', r));
  s.write(head);
  await until(() => text.includes('\r\n\r\n') || closed);
  if (!closed) s.write('POST /p/after HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  const second = until(() => (text.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= 2);
  await Promise.race([ended, second]);
  s.destroy();
  return { text, closed };
}

describe('Connection with close among other tokens', () => {
  for (const [what, head] of [
    ['a 204', 'GET /p/204 HTTP/1.1\r\nHost: x\r\nConnection: close, te\r\n\r\n'],
    ['a 304', 'GET /p/304 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n'],
    ['a HEAD of an empty body', 'HEAD /p/empty HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n'],
    ['a sized body', 'GET /p/b HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n'],
  ] as const) {
    it(`closes the connection after ${what}, and a request sent later on it never reaches the upstream`, async () => {
      seen.length = 0;
      const { text, closed } = await closesAfter(head);
      expect(closed).toBe(true);
      expect(text.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
      expect(text).toMatch(/\r\nconnection: close\r\n/i);
      expect(text.match(/\r\nconnection:/gi)).toHaveLength(1);
      expect(seen).not.toContain('POST /after');
    });
  }

  it('keeps a 204 without Content-Length when the request does not ask to close', async () => {
    const { text } = await closesAfter('GET /p/204 HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(text.split('\r\n\r\n')[0]).not.toMatch(/content-length/i);
  });
});
