import { defined } from '../../config/defined.ts';
import { parseDuration } from '../../duration.ts';
import { defineStage } from '../define.ts';
import { retry } from './retry.ts';
import { retryOptions } from './schema.ts';

export { retry, isRetryableError, type RetryOptions, type RetryPolicy } from './retry.ts';
export { RetryBudget } from './budget.ts';

/** What YAML gets when neither service nor route says anything: one retry, as nginx's `proxy_next_upstream`. */
const YAML_DEFAULTS = { attempts: 2 };

/** `retry` (route over service; on by default; `false` turns it off): re-subscribes what follows on failure. */
export const retryStage = defineStage({
  name: 'retry',
  options: retryOptions,
  service: true,
  onByDefault: true,
  build(options, ctx) {
    const o = { ...YAML_DEFAULTS, ...defined(options) };
    if (o.attempts === 1) return null;
    // Envoy refuses an explicit max_interval below base_interval (every wait would be the cap, base unused);
    // an unset one is 10 × base. On the merged options (a service's cap, a route's base).
    if (o.cap !== undefined) {
      const baseMs = parseDuration(o.base ?? '100ms', 'retry.base');
      const capMs = parseDuration(o.cap, 'retry.cap');
      if (baseMs > capMs) throw new TypeError(`retry.base: ${baseMs}ms is more than cap (${capMs}ms): the backoff would never grow from it`);
    }
    const service = ctx.service.name;
    const route = ctx.routeName;
    const { runtime, events } = ctx;
    return retry({
      ...o,
      runtime,
      onRetry: (e) => events.emit('retry', { service, route, attempt: e.attempt, ...(e.status !== undefined ? { status: e.status } : {}), ...(e.delay !== undefined ? { delay: e.delay } : {}) }),
      onRefused: (e) => events.emit('retryRefused', { service, route, requestId: e.req.id }),
    });
  },
});
