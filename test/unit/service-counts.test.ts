import { VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { virtualRuntime } from '../../lib/runtime.ts';
import { Service } from '../../lib/upstream/service.ts';

/**
 * A service's counts are refused when it is built in code, also when it has
 * no instance yet (discovery only): a `maxPending` of -1 built without error
 * and every request found no instance (review RR3, session 9).
 */
describe('Service counts', () => {
  const runtime = virtualRuntime(new VirtualTimeScheduler());

  it('refuses a maxPending below 0 or not an integer, with or without instances', () => {
    for (const maxPending of [-1, 1.5, Number.NaN]) {
      expect(() => new Service('s', { upstreams: [], discovery: { file: { path: '/nonexistent' } }, maxPending, runtime })).toThrow(`service s maxPending: expected an integer of 0 or more, got ${maxPending}`);
      expect(() => new Service('s', { upstreams: ['http://127.0.0.1:1'], maxPending, runtime })).toThrow('maxPending');
    }
  });

  it('accepts 0 and the default, and still refuses an ejectAfter below 1', async () => {
    const ok = new Service('s', { upstreams: ['http://127.0.0.1:1'], maxPending: 0, runtime });
    await ok.close();
    expect(() => new Service('s', { upstreams: ['http://127.0.0.1:1'], ejectAfter: 0, runtime })).toThrow('service s ejectAfter: expected a positive integer, got 0');
  });
});
