import { VirtualTimeScheduler } from 'rxjs';
import { request } from 'undici';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { virtualRuntime } from '../../lib/runtime.ts';
import { defaultPipeline } from '../../pipeline.ts';
import { startGatewayFromYaml, startUpstream } from '../support/servers.ts';

/**
 * Session 11's 'found and left' (audit A11): a request that joined another's
 * cache miss waited with no deadline of its own (the timeout stage runs
 * after the cache), and when the leader's 504 came it went upstream with a
 * whole `timeouts.total` of its own: answered after up to ~2x total. Here a
 * YAML gateway on virtual time: the waiter's 504 comes at its own total,
 * and the request it sent itself is stopped.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('a coalesced cache miss under timeouts.total (YAML, virtual time)', () => {
  it('answers a waiter 504 at its own total, stopping the request it sent after the leader\'s 504, not a second total later', async () => {
    const hits: string[] = [];
    let aborted = 0;
    const up = await startUpstream((req, res) => {
      hits.push(req.url!);
      res.on('close', () => { if (!res.writableEnded) aborted++; });
    });
    cleanups.push(() => up.close());
    const scheduler = new VirtualTimeScheduler();
    const gw = await startGatewayFromYaml(`
services:
  api: { upstreams: ["${up.url}"], timeout: 1h }
routes:
  - { path: /*, service: api, cache: { ttl: 30s }, timeouts: { total: 1s } }
`, defaultPipeline, process.env, { runtime: virtualRuntime(scheduler) });
    cleanups.push(() => gw.close());
    const until = (frame: number): void => {
      scheduler.schedule(() => {}, frame - scheduler.now());
      scheduler.maxFrames = frame;
      scheduler.flush();
    };
    const answers: Array<{ status: number; code: string; message: string; at: number }> = [];
    const send = () => request(`${gw.url}/item`).then(async (r) => {
      const body = await r.body.json() as { error: { code: string; message: string } };
      answers.push({ status: r.statusCode, ...body.error, at: scheduler.now() });
    });
    const leader = send();
    await vi.waitFor(() => expect(hits).toHaveLength(1));
    until(400);
    const waiter = send();
    // The waiter has joined once its bound is on the clock (the leader's total is due at 1000).
    await vi.waitFor(() => expect(scheduler.actions.map((a) => a.delay)).toContain(1400));
    until(1000); // the leader's total: 504, and the waiter goes upstream itself
    await leader;
    await vi.waitFor(() => expect(hits).toHaveLength(2));
    until(1400); // the waiter's own total
    await vi.waitFor(() => expect(answers).toHaveLength(2), { timeout: 3000 });
    await waiter;
    expect(answers).toEqual([
      { status: 504, code: 'GATEWAY_TIMEOUT', message: 'no response from upstream within 1000ms', at: 1000 },
      { status: 504, code: 'GATEWAY_TIMEOUT', message: 'no response from upstream within 1000ms', at: 1400 },
    ]);
    await vi.waitFor(() => expect(aborted).toBe(2));
  });
});
