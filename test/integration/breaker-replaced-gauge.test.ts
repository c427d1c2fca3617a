import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/load.ts';
import { serve } from '../../lib/lifecycle/serve.ts';
import { silentLogger } from '../../lib/observe/log.ts';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startUpstream } from '../support/servers.ts';
import { until } from '../support/wait.ts';

/**
 * A reload that changes a breaker's options makes a new one; the old one
 * still settles the requests it admitted. Its late transitions must not move
 * `rxgate_circuit_state` or the health view, which speak for the breaker now
 * serving.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const yaml = (url: string, failures: number): string => `listen: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
services:
  held: { upstreams: ["${url}"], retry: false }
routes:
  - { path: /held/*, service: held, circuitBreaker: { consecutiveFailures: ${failures}, failureStatuses: [500] } }
`;

/** A gateway whose one route's breaker opens after one failure, and an upstream that holds each request until told to answer 500. */
async function start() {
  const held: Array<() => void> = [];
  const up = await startUpstream((req, res) => {
    req.resume();
    held.push(() => {
      res.statusCode = 500;
      res.end('broken');
    });
  });
  cleanups.push(() => up.close());
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const served = await serve(parseConfig(yaml(up.url, 1), 'inline.yaml'), defaultPipeline, {
    file: 'inline.yaml', logger: silentLogger, metrics, host: '127.0.0.1', port: 0, watch: false,
  });
  cleanups.push(() => served.close());
  const state = async (): Promise<number | undefined> => (await metrics.breakerState.get()).values.find((v) => v.labels.service === 'held')?.value;
  return { held, up, served, state };
}

describe('a replaced breaker and rxgate_circuit_state', () => {
  it('keeps the series at the new breaker\'s 0 when a request the old breaker admitted fails after the reload', async () => {
    const { held, up, served, state } = await start();
    const healthView = async (): Promise<string | undefined> => {
      const body = (await (await request(`http://127.0.0.1:${served.port}/__rxgate/health`)).body.json()) as { breakers: Array<{ service: string; state: string }> };
      return body.breakers.find((b) => b.service === 'held')?.state;
    };
    expect(await state()).toBe(0);

    // A request the first breaker (1 failure opens it) admits, held at the upstream.
    const first = request(`http://127.0.0.1:${served.port}/held/a`).then(async (r) => {
      await r.body.dump();
      return r.statusCode;
    });
    await until(() => held.length === 1);
    expect((await served.reload('api', yaml(up.url, 2))).outcome).toBe('applied');
    expect(await state()).toBe(0);

    // The old breaker's request fails now: it opens the old breaker, which serves nothing any more.
    held.shift()!();
    expect(await first).toBe(500);
    expect(await state()).toBe(0);
    expect(await healthView()).not.toBe('open');
    // The new breaker (2 failures open it) still writes the series.
    for (const path of ['/held/b', '/held/c']) {
      const next = request(`http://127.0.0.1:${served.port}${path}`).then(async (r) => {
        await r.body.dump();
        return r.statusCode;
      });
      await until(() => held.length === 1);
      held.shift()!();
      expect(await next).toBe(500);
    }
    expect(await state()).toBe(2);
    expect(await healthView()).toBe('open');
  });

  it('keeps it when a reload goes back to the first options, which makes another breaker under the same key (review RA)', async () => {
    const { held, up, served, state } = await start();
    const first = request(`http://127.0.0.1:${served.port}/held/a`).then(async (r) => {
      await r.body.dump();
      return r.statusCode;
    });
    await until(() => held.length === 1);
    // 1 → 2 → 1: the last reload makes a new breaker with the first one's key, while the first still holds its request.
    expect((await served.reload('api', yaml(up.url, 2))).outcome).toBe('applied');
    expect((await served.reload('api', yaml(up.url, 1))).outcome).toBe('applied');
    held.shift()!();
    expect(await first).toBe(500);
    expect(await state()).toBe(0);
  });
});
