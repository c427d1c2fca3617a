import { afterEach, describe, expect, it } from 'vitest';
import { GatewayMetrics } from '../../lib/observe/metrics.ts';
import { readAhead } from '../../lib/stages/cache/read-ahead.ts';

describe('the cache read-ahead on /metrics (review RG, H1)', () => {
  const saved = { ...readAhead };
  afterEach(() => { Object.assign(readAhead, saved); });

  it('shows the bytes held ahead of slow clients as a gauge and the fallbacks to backpressure as a counter', async () => {
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    readAhead.used = 12_345;
    readAhead.refused = 7;
    const text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE rxgate_cache_read_ahead_bytes gauge\nrxgate_cache_read_ahead_bytes 12345\n');
    expect(text).toContain('# TYPE rxgate_cache_read_ahead_refused_total counter\nrxgate_cache_read_ahead_refused_total 7\n');
  });
});
