import { request } from 'undici';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../support/wait.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';
import { connect, echo, startWsUpstream, wsUrl } from '../support/ws.ts';

/**
 * The 503 answers about load that a client may repeat shortly carry
 * `Retry-After: 1`, as `429 TOO_MANY_IN_FLIGHT` does: adaptive concurrency
 * at its limit, and a WebSocket route at its `maxConnections`.
 */

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** A refused WebSocket handshake's status, `retry-after` and JSON body. */
function refusedHandshake(url: string): Promise<{ status: number; retryAfter: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error('the handshake was accepted'));
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
    });
    ws.once('error', reject);
  });
}

/** A gateway whose /chat/* WebSocket route (service options `service`) already has its one connection open. */
async function fullChatRoute(service: string): Promise<string> {
  const up = await startWsUpstream(echo);
  cleanups.push(() => up.close());
  const gw = await startGatewayFromYaml(`
services:
  chat: { upstreams: ["${up.url}"], ${service} }
routes:
  - { path: /chat/*, service: chat, websocket: { maxConnections: 1 } }
`);
  cleanups.push(() => gw.close());
  const open = await connect(`${wsUrl(gw.url)}/chat/a`);
  cleanups.push(() => open.terminate());
  return gw.url;
}

describe('Retry-After on 503 answers about load', () => {
  it('adaptive concurrency at its limit answers 503 SERVICE_UNAVAILABLE with Retry-After: 1', async () => {
    const waiting: Array<() => void> = [];
    const up = await startUpstream((req, res) => {
      req.resume();
      waiting.push(() => res.end('done'));
    });
    cleanups.push(() => up.close());
    const gw = await startGatewayFromYaml(`
services:
  svc: { upstreams: ["${up.url}"], adaptiveConcurrency: { initialLimit: 1, minLimit: 1, maxLimit: 1 } }
routes:
  - { path: /*, service: svc, retry: false }
`);
    cleanups.push(() => gw.close());
    const first = request(`${gw.url}/a`);
    await until(() => waiting.length === 1);
    const refused = await request(`${gw.url}/b`);
    expect(refused.statusCode).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(await refused.body.json()).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE' } });
    waiting.shift()!();
    expect(await (await first).body.text()).toBe('done');
  });

  it("a WebSocket route at its maxConnections answers the next upgrade 503 with Retry-After: 1", async () => {
    const url = await fullChatRoute('timeout: 2s');
    const refused = await refusedHandshake(`${wsUrl(url)}/chat/b`);
    expect(refused.status).toBe(503);
    expect(refused.retryAfter).toBe('1');
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'SERVICE_UNAVAILABLE' } });
  });

  it("a WebSocket route's refusals at maxConnections are not the upstream's failures: the breaker stays closed for plain HTTP", async () => {
    const url = await fullChatRoute('circuitBreaker: { consecutiveFailures: 2 }');
    for (let i = 0; i < 4; i++) expect((await refusedHandshake(`${wsUrl(url)}/chat/b`)).status).toBe(503);
    const plain = await request(`${url}/chat/plain`);
    await plain.body.text();
    expect(plain.statusCode).not.toBe(503);
  });
});
