import { defineStage } from '../define.ts';
import { hedge } from './hedge.ts';
import { hedgeOptions } from './schema.ts';

export { hedge, type HedgeOptions } from './hedge.ts';

/** `hedge` (route over service): for idempotent requests, another attempt on another instance when the first is slow. */
export const hedgeStage = defineStage({
  name: 'hedge',
  options: hedgeOptions,
  service: true,
  build(options, ctx) {
    const service = ctx.service.name;
    const route = ctx.routeName;
    return hedge({
      ...(options.after !== undefined ? { after: options.after } : {}),
      ...(options.max !== undefined ? { max: options.max } : {}),
      ...(options.methods !== undefined ? { methods: options.methods } : {}),
      runtime: ctx.runtime,
      onHedge: (outcome) => ctx.events.emit('hedge', { service, route, outcome }),
    });
  },
});
