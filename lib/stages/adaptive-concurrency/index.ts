import { defined } from '../../config/defined.ts';
import { defineStage } from '../define.ts';
import { adaptiveConcurrency, gradientLimit } from './adaptive-concurrency.ts';
import { adaptiveConcurrencyOptions } from './schema.ts';

export { adaptiveConcurrency, gradientLimit, type AdaptiveConcurrencyOptions } from './adaptive-concurrency.ts';
export { GradientLimit, type GradientConfig } from './gradient.ts';

/** `adaptiveConcurrency` (route over service): 503 at once over a limit that follows the service's latency. */
export const adaptiveConcurrencyStage = defineStage({
  name: 'adaptiveConcurrency',
  options: adaptiveConcurrencyOptions,
  service: true,
  build(value, ctx) {
    const options = value === true ? {} : defined(value);
    const service = ctx.service.name;
    // One limit per service (a route with its own options gets its own).
    const own = ctx.route.adaptiveConcurrency !== undefined;
    const key = `concurrency:${service}${own ? `:${ctx.route.path}` : ''}:${JSON.stringify(options)}`;
    const limiter = ctx.resources.get(key, () => gradientLimit({ ...options, runtime: ctx.runtime }));
    return adaptiveConcurrency(limiter, {
      runtime: ctx.runtime,
      onLimited: (limit) => ctx.events.emit('concurrencyLimited', { service, limit: Math.floor(limit) }),
    });
  },
});
