import { forward } from '../../upstream/forward.ts';
import { serviceFor } from '../../upstream/service-for.ts';
import { defineStage } from '../define.ts';
import { mirror } from './mirror.ts';
import { mirrorOptions } from './schema.ts';

export { mirror, type MirrorOptions } from './mirror.ts';

/** `mirror` (route): a share of the route's requests also goes to a shadow service, its response discarded. */
export const mirrorStage = defineStage({
  name: 'mirror',
  options: mirrorOptions,
  build(options, ctx) {
    const config = ctx.config.services[options.service];
    if (config === undefined) throw new TypeError(`mirror.service: unknown service ${JSON.stringify(options.service)}`);
    const shadow = serviceFor(options.service, config, ctx.resources, ctx.runtime, ctx.events);
    const service = options.service;
    const route = ctx.routeName;
    const policy = mirror({
      to: forward(shadow),
      ...(options.percent !== undefined ? { percent: options.percent } : {}),
      ...(options.maxInFlight !== undefined ? { maxInFlight: options.maxInFlight } : {}),
      ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
      runtime: ctx.runtime,
      onMirror: (outcome) => ctx.events.emit('mirror', { service, route, outcome }),
    });
    // Registered after the shadow service, so closed before it: its pool need not wait for hung copies.
    ctx.resources.onClose(() => policy.close());
    return policy;
  },
});
