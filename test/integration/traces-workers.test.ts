import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { rxgateRuns, type RxgateRuns } from '../support/rxgate-process.ts';
import { startUpstream } from '../support/servers.ts';
import { startSpanCollector } from '../support/span-collector.ts';
import { until } from '../support/wait.ts';

/**
 * Under --workers each worker thread loads the tracing preload and has its
 * own provider, and a drained worker ends by closing its port, never through
 * the CLI's exit: its spans were dropped (review RC D3b: nothing exported
 * with 2 workers). A drained worker now flushes its provider first.
 */

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
});

describe('traces at exit under --workers 2', { timeout: 60_000 }, () => {
  it('exports the spans of a request a worker finishes during the drain', async () => {
    const collector = await startSpanCollector();
    const spans = collector.spans;
    closers.push(() => collector.close());
    let arrived = false;
    const slow = await startUpstream((req, res) => {
      req.resume();
      arrived = true;
      setTimeout(() => res.end('late'), 2000);
    });
    closers.push(() => slow.close());
    const runs: RxgateRuns = rxgateRuns();
    closers.push(() => runs.remove());
    const preload = new URL('../support/otel-batch-preload.mjs', import.meta.url).pathname;
    const file = runs.file(`listen: { host: 127.0.0.1, port: 0 }
reload: { watch: false }
drain: { timeout: 10s }
services:
  slow: { upstreams: ["${slow.url}"] }
routes:
  - { path: /slow, service: slow }
`);
    const p = runs.start(['--config', file, '--workers', '2'], { OTEL_TEST_COLLECTOR: collector.url }, ['--import', preload]);
    const listening = await p.logged('rxgate listening');
    const answer = request(`http://127.0.0.1:${listening['port'] as number}/slow`).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }));
    await until(() => arrived);
    p.proc.kill('SIGTERM');
    expect(await answer).toEqual({ status: 200, body: 'late' });
    expect(await p.exited).toBe(0);
    // SERVER (kind 1) and CLIENT (kind 2) of the one request, from the worker that served it.
    expect(spans.map((s) => s.kind).sort()).toEqual([1, 2]);
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1);
  });
});
