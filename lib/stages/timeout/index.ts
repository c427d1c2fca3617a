import { defineStage } from '../define.ts';
import { timeout } from './timeout.ts';
import { timeoutsOptions } from './schema.ts';

export { timeout, type TimeoutOptions } from './timeout.ts';

/** `timeouts.total` (and `exchange`): outside retry, bounds every attempt together (504). */
export const timeoutStage = defineStage({
  name: 'timeout',
  key: 'timeouts',
  options: timeoutsOptions,
  service: true,
  build(t, ctx) {
    if (t.total === undefined && t.exchange === undefined) return null;
    return timeout({ head: t.total ?? null, exchange: t.exchange ?? null, runtime: ctx.runtime });
  },
});

/** `timeouts.perAttempt`: inside retry, bounds each attempt on its own (504). */
export const attemptTimeoutStage = defineStage({
  name: 'attemptTimeout',
  key: 'timeouts',
  options: timeoutsOptions,
  service: true,
  build: (t, ctx) => (t.perAttempt === undefined ? null : timeout({ head: t.perAttempt, runtime: ctx.runtime })),
});
