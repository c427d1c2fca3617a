import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { startUpstream } from '../support/servers.ts';
import { startSpanCollector } from '../support/span-collector.ts';
import { until } from '../support/wait.ts';

/**
 * A second SIGTERM/SIGINT during the drain stops the gateway at once, but
 * its tracing SDK still exports what it holds (at most 2 s): the spans of the
 * requests the stop cut off. Before, the second signal called process.exit at
 * once, and a BatchSpanProcessor's spans (sent every 5 s) were lost, in the
 * one process and in every worker thread (under --workers the process did
 * not even exit 130: it exited with threads holding uWS sockets).
 */

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

describe('traces at a second signal', { timeout: 60_000 }, () => {
  for (const workers of [[], ['--workers', '2']]) {
    it(`exports the span of a request the stop cut off (${workers.length === 0 ? 'one process' : '--workers 2'}), exit 130`, async () => {
      const collector = await startSpanCollector();
      closers.push(() => collector.close());
      let arrived = false;
      // Never answers: only the stop ends the request.
      const held = await startUpstream((req) => {
        req.resume();
        arrived = true;
      });
      closers.push(() => held.close());
      const runs: RxgateRuns = rxgateRuns();
      closers.push(() => runs.remove());
      const preload = new URL('../support/otel-batch-preload.mjs', import.meta.url).pathname;
      const file = runs.file(`listen: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
drain: { timeout: 30s }
services:
  held: { upstreams: ["${held.url}"], timeout: 60s }
routes:
  - { path: /held, service: held }
`);
      const p = runs.start(['--config', file, ...workers], { OTEL_TEST_COLLECTOR: collector.url }, ['--import', preload]);
      const listening = await p.logged('rxgate listening');
      const answer = request(`http://127.0.0.1:${listening['port'] as number}/held`).then((res) => res.body.text(), (err: unknown) => err);
      await until(() => arrived);
      p.proc.kill('SIGTERM');
      await p.logged('rxgate stopping');
      p.proc.kill('SIGINT');
      expect(await p.exited).toBe(130);
      expect(await answer).toBeInstanceOf(Error);
      // The cut request's SERVER span (kind 1), from the thread that served it.
      expect(collector.spans.map((s) => s.kind)).toContain(1);
    });
  }
});
