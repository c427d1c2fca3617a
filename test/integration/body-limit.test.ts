import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../lib/gateway.ts';
import { startGatewayFromYaml, startUpstream, type TestUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

describe('maxBodySize', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    for (const c of open.splice(0).reverse()) await c.close();
  });

  /** An upstream that reads the whole body and says how many bytes it got; `aborted` counts uploads cut off mid-body. */
  async function counter(): Promise<TestUpstream & { received: number[]; aborted: () => number; started: () => number }> {
    const received: number[] = [];
    let aborted = 0;
    let started = 0;
    const up = await startUpstream((req, res) => {
      started++;
      let n = 0;
      req.on('data', (c: Buffer) => (n += c.length));
      req.on('close', () => {
        if (!req.complete) aborted++;
      });
      req.on('end', () => {
        received.push(n);
        res.end(String(n));
      });
    });
    open.push(up);
    return Object.assign(up, { received, aborted: () => aborted, started: () => started });
  }

  async function gateway(upstream: string): Promise<Gateway & { url: string }> {
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${upstream}"], maxBodySize: 1000, retry: false }
routes:
  - { path: /small/*, service: api }
  - { path: /big/*, service: api, maxBodySize: 100000 }
`);
    open.push(gw);
    return gw;
  }

  it('answers 413 PAYLOAD_TOO_LARGE at once when Content-Length is over the limit, without calling the upstream', async () => {
    const up = await counter();
    const gw = await gateway(up.url);
    const res = await request(`${gw.url}/small/x`, { method: 'POST', body: Buffer.alloc(1001) });
    expect(res.statusCode).toBe(413);
    expect(await res.body.json()).toEqual({ error: { code: 'PAYLOAD_TOO_LARGE', message: 'request body larger than 1000 bytes' } });
    expect(up.received).toEqual([]);
  });

  it('lets a body at the limit through, and a route can raise its service limit', async () => {
    const up = await counter();
    const gw = await gateway(up.url);
    const atLimit = await request(`${gw.url}/small/x`, { method: 'POST', body: Buffer.alloc(1000) });
    expect(atLimit.statusCode).toBe(200);
    expect(await atLimit.body.text()).toBe('1000');
    const bigger = await request(`${gw.url}/big/x`, { method: 'POST', body: Buffer.alloc(50_000) });
    expect(bigger.statusCode).toBe(200);
    expect(await bigger.body.text()).toBe('50000');
  });

  it('refuses a chunked upload that arrives over the limit before the upstream is called', async () => {
    const up = await counter();
    const gw = await gateway(up.url);
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 50; i++) yield Buffer.alloc(100);
    }
    const res = await request(`${gw.url}/small/x`, { method: 'POST', body: Readable.from(chunks()) });
    expect(res.statusCode).toBe(413);
    await res.body.dump();
    expect(up.received).toEqual([]);
  });

  it('cuts off a chunked upload mid-stream once it passes the limit: 413, and the upstream sees the upload aborted', async () => {
    const up = await counter();
    const gw = await gateway(up.url);
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.alloc(600);
      // Wait until the upstream is receiving, so the limit trips mid-stream.
      await until(() => up.started() > 0);
      yield Buffer.alloc(600);
    }
    const res = await request(`${gw.url}/small/x`, { method: 'POST', body: Readable.from(chunks()) });
    expect(res.statusCode).toBe(413);
    expect((await res.body.json() as { error: { code: string } }).error.code).toBe('PAYLOAD_TOO_LARGE');
    await expect.poll(() => up.aborted()).toBe(1);
    expect(up.received).toEqual([]);
  });
});
