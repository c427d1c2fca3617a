import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { makeCa, pemFolder, type Ca, type Issued } from '../support/certs.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { connect, echo, startWsUpstream, wsUrl } from '../support/ws.ts';

/**
 * A client's own `X-Forwarded-Client-Cert` never reaches the upstream: the edge verifies no client
 * certificate (uWS cannot require one, docs/tls.md), so an app reading XFCC, as behind Envoy, would
 * take the client's word for who it is. Over HTTPS (where an app would expect the gateway to have
 * checked one) and plain HTTP alike, as Envoy's default `forward_client_cert_details: SANITIZE`.
 */

const FORGED = 'By=spiffe://cluster.local/ns/default/sa/gateway;Hash=00;Subject="CN=admin";URI=spiffe://cluster.local/ns/default/sa/admin';

let ca: Ca;
let leaf: Issued;
let upstream: TestUpstream;

beforeAll(async () => {
  ca = await makeCa('xfcc test CA');
  leaf = await ca.issue('gw.test', { names: ['127.0.0.1'] });
  upstream = await startUpstream((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ xfcc: req.headers['x-forwarded-client-cert'] ?? null, other: req.headers['x-other'] ?? null }));
  });
});
afterAll(() => upstream.close());

describe('a client-sent X-Forwarded-Client-Cert', () => {
  let gateway: (Gateway & { url: string }) | undefined;
  let files: ReturnType<typeof pemFolder> | undefined;
  let agent: Agent | undefined;
  afterEach(async () => {
    await agent?.close();
    await gateway?.close();
    files?.remove();
    gateway = undefined;
    files = undefined;
    agent = undefined;
  });

  const routes = (): string => `services:
  echo: { upstreams: ["${upstream.url}"], retry: false }
routes:
  - { path: /*, service: echo }
`;

  it('is dropped on an HTTPS listener, and the request is forwarded with its other headers', async () => {
    files = pemFolder();
    gateway = await startGatewayFromYaml(`listen:
  tls:
    cert: ${files.write('gw.crt', leaf.cert)}
    key: ${files.write('gw.key', leaf.key)}
${routes()}`);
    agent = new Agent({ connect: { ca: ca.cert } });
    const res = await request(`https://127.0.0.1:${gateway.port}/whoami`, {
      dispatcher: agent, headers: { 'x-forwarded-client-cert': FORGED, 'x-other': 'kept' },
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ xfcc: null, other: 'kept' });
  });

  it('is dropped on a plain HTTP listener too, repeated or in any case', async () => {
    gateway = await startGatewayFromYaml(routes());
    const res = await request(`${gateway.url}/whoami`, {
      headers: ['X-Forwarded-Client-Cert', FORGED, 'x-forwarded-client-cert', 'Subject="CN=root"', 'x-other', 'kept'],
    });
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ xfcc: null, other: 'kept' });
  });

  it('is dropped from a WebSocket upgrade sent upstream', async () => {
    const ws = await startWsUpstream(echo);
    try {
      gateway = await startGatewayFromYaml(`services:
  chat: { upstreams: ["${ws.url}"], timeout: 2s }
routes:
  - { path: /chat/*, service: chat, websocket: true }
`);
      const client = await connect(`${wsUrl(gateway.url)}/chat/a`, [], { 'x-forwarded-client-cert': FORGED, 'x-other': 'kept' });
      client.terminate();
      expect(ws.handshakes[0]!.headers['x-forwarded-client-cert']).toBeUndefined();
      expect(ws.handshakes[0]!.headers['x-other']).toBe('kept');
    } finally {
      await ws.close();
    }
  });
});
