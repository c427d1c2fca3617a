import { describe, expect, it } from 'vitest';
import { isValidTraceparent, newTraceparent, traceIdOf } from '../../lib/observe/trace-context.ts';
import { requestIds } from '../../lib/server/request-id.ts';

/**
 * Request ids and new `traceparent`s are slices of a batch made ahead
 * (flat strings, not ropes: docs/performance-instructions.md, eighth
 * round). Across the batches' edges they must be what one concatenation
 * per call gave.
 */
describe('ids made a batch at a time', () => {
  it('counter request ids are the prefix and 1, 2, 3… across several batches', () => {
    const next = requestIds();
    const first = next();
    const prefix = first.slice(0, first.lastIndexOf('-') + 1);
    expect(first).toBe(prefix + '1');
    expect(prefix).toMatch(/^[0-9a-f]{16}-$/);
    for (let k = 2; k <= 1_100; k++) expect(next()).toBe(prefix + k);
  });

  it('two generators count on their own', () => {
    const a = requestIds();
    const b = requestIds();
    for (let k = 0; k < 300; k++) a();
    expect(b().endsWith('-1')).toBe(true);
    expect(a().endsWith('-301')).toBe(true);
  });

  it('new traceparents are valid, sampled and all different, across several refills', () => {
    const seen = new Set<string>();
    for (let k = 0; k < 1_000; k++) {
      const tp = newTraceparent();
      expect(tp.length).toBe(55);
      expect(isValidTraceparent(tp)).toBe(true);
      expect(tp.startsWith('00-') && tp.endsWith('-01')).toBe(true);
      seen.add(traceIdOf(tp));
    }
    expect(seen.size).toBe(1_000);
  });
});
