import pino from 'pino';
import { throwError } from 'rxjs';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { BadRequestError } from '../../lib/errors.ts';
import { Gateway } from '../../lib/gateway.ts';
import { AccessLog } from '../../lib/observe/access-log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { requestObservers } from '../../lib/observe/request-log.ts';
import { until } from '../support/wait.ts';

/**
 * An error answer's JSON body is serialised once, for the answer and for
 * the access log's `bytesOut` (it was serialised twice with the log on).
 */

let gateway: Gateway | null = null;
afterEach(async () => {
  await gateway?.close();
  gateway = null;
});

/** A 400 whose message counts how often it is read: once per serialisation of the body. */
class CountedError extends BadRequestError {
  reads = 0;
  constructor() {
    super('counted');
    Object.defineProperty(this, 'message', { get: () => { this.reads++; return 'counted'; } });
  }
}

describe('an error answer with the access log on', () => {
  it('serialises its body once and logs the bytes the client received', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const errors: CountedError[] = [];
    gateway = new Gateway({
      host: '127.0.0.1', port: 0, logger, metrics: new GatewayMetrics({ defaultMetrics: false }),
      observers: requestObservers(AccessLog.create({ logger }), null),
      routes: [{ path: '/*', handler: () => throwError(() => { const e = new CountedError(); errors.push(e); return e; }) }],
    });
    const port = await gateway.listen();
    const res = await request(`http://127.0.0.1:${port}/x`);
    const body = await res.body.text();
    expect(res.statusCode).toBe(400);
    expect(JSON.parse(body)).toEqual({ error: { code: 'BAD_REQUEST', message: 'counted' } });
    await until(() => lines.some((l) => l.includes('"msg":"access"')));
    const access = JSON.parse(lines.find((l) => l.includes('"msg":"access"'))!) as { bytesOut: number; status: number };
    expect(access.status).toBe(400);
    expect(access.bytesOut).toBe(Buffer.byteLength(body));
    expect(errors).toHaveLength(1);
    expect(errors[0]!.reads).toBe(1);
  });
});
