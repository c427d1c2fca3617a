import { connect } from 'node:net';
import { of } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gateway, type Handler, type Logger } from '../../lib/index.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';

/**
 * A head the writer refuses (a CR/LF/NUL, a value not a string:
 * response-head-refused.test.ts) goes out as a 500. The access log said 500,
 * but /metrics counted the answer under the status the stage set (2xx) and
 * no error: it is now counted as the 500 INTERNAL_ERROR the client got.
 */
let gateway: Gateway;
let port = 0;
const finished: Array<[string, number]> = [];
const logger = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {}, child() { return this; } } as unknown as Logger;
const answer = (headers: unknown[]): Handler => () => of({ status: 200, headers: headers as string[], body: null });

beforeAll(async () => {
  gateway = new Gateway({
    host: '127.0.0.1', port: 0, logger, metrics: new GatewayMetrics({ defaultMetrics: false }),
    observers: { onFinish: (req, status) => { finished.push([req.path, status]); } },
    routes: [
      { path: '/crlf', handler: answer(['x-c', 'a\r\nx-injected: 1']) },
      { path: '/num', handler: answer(['x-n', 5]) },
      { path: '/ok', handler: answer(['x-a', 'fine']) },
    ],
  });
  port = await gateway.listen();
});

afterAll(async () => {
  await gateway?.close();
});

function raw(path: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    s.on('data', (d) => { text += d.toString('latin1'); if (text.includes('\r\n\r\n') && path === '/ok') s.end(); });
    s.on('close', () => resolve(text));
    s.on('error', () => {});
    s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
  });
}

describe('metrics of a refused response head', () => {
  it('count it as the 500 INTERNAL_ERROR the client got, as the access log does', async () => {
    expect(await raw('/crlf')).toMatch(/^HTTP\/1\.1 500 /);
    expect(await raw('/num')).toMatch(/^HTTP\/1\.1 500 /);
    expect(await raw('/ok')).toMatch(/^HTTP\/1\.1 200 /);
    const text = (await gateway.metricsText()).body;
    const requests = text.split('\n').filter((l) => l.startsWith('rxgate_requests_total{')).sort();
    expect(requests).toEqual([
      'rxgate_requests_total{route="/crlf",status="5xx"} 1',
      'rxgate_requests_total{route="/num",status="5xx"} 1',
      'rxgate_requests_total{route="/ok",status="2xx"} 1',
    ]);
    expect(text).toContain('rxgate_errors_total{code="INTERNAL_ERROR"} 2');
    expect(finished.sort()).toEqual([['/crlf', 500], ['/num', 500], ['/ok', 200]]);
  });
});
