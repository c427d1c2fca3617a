import type { IncomingMessage, ServerResponse } from 'node:http';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { forward } from '../../lib/upstream/forward.ts';
import { Service } from '../../lib/upstream/service.ts';
import { retry } from '../../lib/stages/retry/retry.ts';
import { readBody } from '../support/http.ts';
import { startGateway, startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';

/**
 * The resilience defaults (retry and breaker on for every route, from YAML
 * that says nothing about them) must not make one bad endpoint or one dead
 * instance everybody's problem.
 */
const open: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close();
});

/** An upstream counting requests by `METHOD path`; `/status/<n>` answers n, anything else 200 with its name and the body it got. */
async function countingUpstream(name: string, hits: Map<string, number>): Promise<TestUpstream> {
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    void readBody(req).then((body) => {
      const key = `${req.method} ${req.url}`;
      hits.set(key, (hits.get(key) ?? 0) + 1);
      hits.set(name, (hits.get(name) ?? 0) + 1);
      const status = /^\/status\/(\d{3})$/.exec(req.url ?? '');
      if (status !== null) res.writeHead(Number(status[1]), { 'content-type': 'text/plain' }).end(`status ${status[1]}`);
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(`${name} ${body}`);
    });
  });
  open.push(up);
  return up;
}

/** Port of a server that was listening and no longer is: connections to it are refused. */
async function closedPort(): Promise<number> {
  const up = await startUpstream(() => undefined);
  await up.close();
  return up.port;
}

async function send(url: string, method = 'GET', body?: string): Promise<{ status: number; attempts: number; text: string }> {
  const res = await request(url, { method, ...(body === undefined ? {} : { body, headers: { 'content-type': 'text/plain' } }) });
  const text = await res.body.text();
  return { status: res.statusCode, attempts: Number(res.headers['x-gateway-attempts'] ?? 1), text };
}

describe('safe resilience defaults', () => {
  it('one endpoint\'s 500/502/503 does not open the breaker for the whole service, and a 502/503 GET is sent once', async () => {
    const hits = new Map<string, number>();
    const up = await countingUpstream('up', hits);
    const gw = await startGatewayFromYaml(`
services:
  svc:
    upstreams: ["${up.url}"]
routes:
  - { path: /svc/*, service: svc, rewrite: { stripPrefix: /svc } }
`);
    open.push(gw);
    const rounds = 4;
    for (let i = 0; i < rounds; i++) {
      for (const status of [500, 502, 503]) {
        const res = await send(`${gw.url}/svc/status/${status}`);
        expect(res.status).toBe(status);
        expect(res.text).toBe(`status ${status}`);
        expect(res.attempts).toBe(1);
      }
    }
    const ok = await send(`${gw.url}/svc/ok`);
    expect(ok.status).toBe(200);
    for (const status of [500, 502, 503]) expect(hits.get(`GET /status/${status}`)).toBe(rounds);
  });

  it('loses no request, GET or POST, to one dead instance of three, and ejects it at once', async () => {
    const hits = new Map<string, number>();
    const a = await countingUpstream('a', hits);
    const b = await countingUpstream('b', hits);
    const dead = `http://127.0.0.1:${await closedPort()}`;
    const gw = await startGatewayFromYaml(`
services:
  svc:
    upstreams: ["${dead}", "${a.url}", "${b.url}"]
    balancer: round-robin
routes:
  - { path: /*, service: svc }
`);
    open.push(gw);
    const n = 30;
    const answers = [];
    for (let i = 0; i < n; i++) {
      // POST first: round-robin starts at the dead instance, so the POST meets
      // it and is retried, its body unread, because it never reached it.
      answers.push(i % 2 === 0 ? await send(`${gw.url}/orders`, 'POST', `order ${i}`) : await send(`${gw.url}/items/${i}`));
    }
    for (const [i, res] of answers.entries()) {
      expect(res.status).toBe(200);
      if (i % 2 === 0) expect(res.text).toMatch(new RegExp(`^[ab] order ${i}$`));
    }
    // Every request reached a live instance exactly once.
    expect((hits.get('a') ?? 0) + (hits.get('b') ?? 0)).toBe(n);
    expect(hits.get('POST /orders')).toBe(n / 2);
    // Only the first request that met the dead instance needed a second
    // attempt: from then on the instance was out of rotation.
    expect(answers[0]!.attempts).toBe(2);
    expect(answers.reduce((sum, r) => sum + r.attempts, 0)).toBe(n + 1);
  });

  it('still sends to the only instance of a service after ejecting it (panic), and fails fast with panic: false', async () => {
    let calls = 0;
    const up = await startUpstream((req, res) => {
      req.resume();
      // The first request hangs past the service timeout: a timeout ejects the instance.
      if (++calls > 1) res.end('back');
    });
    open.push(up);
    const gateway = async (panic: boolean) => {
      const svc = new Service(`solo-${panic}`, { upstreams: [up.url], timeout: '100ms', panic });
      const gw = await startGateway([{ path: '/*', handler: retry({ attempts: 1 })(forward(svc)) }], { services: [svc] });
      open.push(gw);
      return { svc, gw };
    };

    const { svc, gw } = await gateway(true);
    expect((await send(`${gw.url}/x`)).status).toBe(504);
    expect(svc.inRotation(svc.upstreams[0]!)).toBe(false);
    const res = await send(`${gw.url}/x`);
    expect(res.status).toBe(200);
    expect(res.text).toBe('back');

    calls = 0;
    const strict = await gateway(false);
    expect((await send(`${strict.gw.url}/x`)).status).toBe(504);
    const refused = await send(`${strict.gw.url}/x`);
    expect(refused.status).toBe(503);
    expect(JSON.parse(refused.text)).toMatchObject({ error: { code: 'NO_HEALTHY_UPSTREAM' } });
    expect(calls).toBe(1);
  });
});
