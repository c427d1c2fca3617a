import { request } from 'undici';
import { afterAll, expect, it } from 'vitest';
import { ForbiddenError } from '../../lib/errors.ts';
import { Gateway } from '../../lib/gateway.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';

/**
 * A handler that throws when called (a stage of one's own) under
 * `limits.maxRequestsPerClient`: the edge's admission wraps the pipeline in
 * an Observable whose teardown gives the client's slot back, and a throw
 * returned no teardown, so one throw locked the client out with 429 for good
 * (audit A6).
 */
let gateway: Gateway | undefined;
afterAll(async () => { await gateway?.close(); });

it('gives the client its slot back when a handler throws, so the next requests are answered, not 429', async () => {
  gateway = new Gateway({
    host: '127.0.0.1', port: 0, services: [], logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), limits: { maxRequestsPerClient: 1 },
    routes: [{ path: '/throws', handler: () => { throw new ForbiddenError('thrown'); } }],
  });
  const gw = `http://127.0.0.1:${await gateway.listen()}`;
  const statuses: number[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await request(gw + '/throws');
    await res.body.dump();
    statuses.push(res.statusCode);
  }
  expect(statuses).toEqual([403, 403, 403]);
});
