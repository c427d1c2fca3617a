import { connect } from 'node:net';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { until } from '../support/wait.ts';

/**
 * A client's long path, query or header wrote an access line as long as
 * itself (A16-findings F1): a 40 KB header a 431 refused, listed in
 * `log.headers`, made a line of 40 KB (up to 1 MiB with `limits.maxHeaderBytes` raised), which Docker's and containerd's log drivers split
 * at 16 KiB into pieces no JSON shipper reads. Each is now cut at 2,048
 * characters, `…` marking the cut.
 */

let runs: RxgateRuns;
let upstream: Server;
beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  runs = rxgateRuns();
});
afterAll(async () => {
  runs?.remove();
  await new Promise((r) => upstream?.close(r));
});

function send(port: number, raw: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    socket.on('close', () => resolve(got));
    socket.on('error', () => resolve(got));
    socket.write(raw);
  });
}

it('cuts the path, the query and each logged header at 2,048 characters, also on a 431, so a line stays under 16 KiB', { timeout: 30_000 }, async () => {
  const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const file = runs.file(`listen: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
log: { headers: [user-agent, x-junk], query: true }
services: { up: { upstreams: ["${up}"] } }
routes: [{ name: api, path: /api/*, service: up }]
`);
  const gw = runs.start(['--config', file], { RXGATE_LOG_LEVEL: 'info' });
  const port = (await gw.logged('rxgate listening'))['port'] as number;
  try {
    const path = `/api/${'p'.repeat(3000)}`;
    const answer = await send(port, `GET ${path}?q=${'q'.repeat(4000)} HTTP/1.1\r\nHost: a\r\nConnection: close\r\nUser-Agent: ${'u'.repeat(2500)}\r\nX-Junk: short\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    const line = await gw.logged('access');
    expect(line['path']).toBe(`${path.slice(0, 2048)}…`);
    expect(line['query']).toBe(`q=${'q'.repeat(2046)}…`);
    expect(line['headers']).toEqual({ 'user-agent': `${'u'.repeat(2048)}…`, 'x-junk': 'short' });
    // A 40 KB header in one read reaches rxgate, which answers 431 and logs the request with it.
    const refused = await send(port, `GET /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Junk: ${'j'.repeat(40_000)}\r\n\r\n`);
    expect(refused).toMatch(/^HTTP\/1\.1 431 /);
    expect((await gw.logged('access', 2))['headers']).toEqual({ 'x-junk': `${'j'.repeat(2048)}…` });
    for (const text of gw.stdout().split('\n')) expect(Buffer.byteLength(text)).toBeLessThan(16 * 1024);
  } finally {
    gw.proc.kill('SIGTERM');
    await gw.exited;
  }
});
