import type { IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * What a headers.request rule writes reaches every upstream the request goes to (review RI, L1 and L2):
 * the mirror's shadow gets the X-Forwarded-Prefix a rule set (its copy had empty locals, so forward dropped
 * it as a client's own), and a client's Connection naming a header the rule writes does not drop the rule's
 * value (nginx sends proxy_set_header values whatever the client's Connection says).
 */
let gw: Gateway & { url: string };
let real: TestUpstream;
let shadow: TestUpstream;
const got: { real: IncomingHttpHeaders[]; shadow: IncomingHttpHeaders[] } = { real: [], shadow: [] };

beforeAll(async () => {
  real = await startUpstream((req, res) => { got.real.push(req.headers); req.resume(); res.end('ok'); });
  shadow = await startUpstream((req, res) => { got.shadow.push(req.headers); req.resume(); res.end('shadow'); });
  gw = await startGatewayFromYaml(`
services:
  real: { upstreams: ["${real.url}"] }
  shadow: { upstreams: ["${shadow.url}"] }
routes:
  - path: /mirrored/*
    service: real
    headers: { request: { set: { x-forwarded-prefix: /api, x-api: "2" } } }
    mirror: { service: shadow, percent: 100 }
  - { path: /xff/*, service: real, headers: { request: { set: { x-forwarded-for: 198.51.100.7, x-internal: yes } } } }
`, defaultPipeline, process.env);
});

afterAll(async () => {
  await gw?.close();
  await real?.close();
  await shadow?.close();
});

/** One raw GET with `extra` header lines; resolves on the answer's head. */
function get(path: string, ...extra: string[]): Promise<string> {
  const { port } = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1');
    let text = '';
    s.on('data', (d) => { text += d.toString('latin1'); if (text.includes('\r\n\r\n')) { s.destroy(); resolve(text.slice(0, 12)); } });
    s.on('error', reject);
    s.write(`GET ${path} HTTP/1.1\r\nHost: t\r\n${extra.map((l) => `${l}\r\n`).join('')}\r\n`);
  });
}

describe('headers a request rule writes', () => {
  it('reach the mirror\'s shadow as they reach the service, the forwarding ones included', async () => {
    expect(await get('/mirrored/x', 'X-Forwarded-Prefix: /evil')).toBe('HTTP/1.1 200');
    await until(() => got.shadow.length === 1);
    expect([got.real[0]!['x-forwarded-prefix'], got.real[0]!['x-api']]).toEqual(['/api', '2']);
    expect([got.shadow[0]!['x-forwarded-prefix'], got.shadow[0]!['x-api']]).toEqual(['/api', '2']);
  });

  it('are sent though the client\'s Connection names them; the client\'s own named ones are not', async () => {
    got.real.length = 0;
    expect(await get('/xff/x', 'Connection: keep-alive, x-forwarded-for, x-internal, x-mine', 'X-Mine: 1')).toBe('HTTP/1.1 200');
    await until(() => got.real.length === 1);
    expect([got.real[0]!['x-forwarded-for'], got.real[0]!['x-internal'], got.real[0]!['x-mine']]).toEqual(['198.51.100.7, 127.0.0.1', 'yes', undefined]);
  });
});
