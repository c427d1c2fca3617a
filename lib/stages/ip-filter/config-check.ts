import type { z } from 'zod';
import { pipelineFor } from '../../config/pipeline.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import type { StageRegistry } from '../define.ts';

/**
 * The top-level `ipFilter` and `trustedProxies` hold for every route: a
 * route whose `pipeline` list leaves `ipFilter` out would silently skip a
 * gateway-wide deny list, so that is refused (set `ipFilter: false` on the
 * route to mean it).
 */
export function checkGatewayWideIpFilter(config: GatewayConfig, stages: StageRegistry, ctx: z.RefinementCtx): void {
  if (config.ipFilter === undefined && config.trustedProxies === undefined) return;
  if (stages.get('ipFilter') === undefined) return;
  let reportedTop = false;
  config.routes.forEach((route, i) => {
    if (route.ipFilter === false || route.service === undefined && route.backends === undefined) return;
    const service = route.service ?? route.backends?.[0]?.service;
    if (service === undefined || config.services[service] === undefined) return;
    if (pipelineFor({ ...route, service }, config, stages).includes('ipFilter')) return;
    if (route.pipeline === undefined && reportedTop) return;
    reportedTop ||= route.pipeline === undefined;
    ctx.addIssue({
      code: 'custom',
      path: route.pipeline !== undefined ? ['routes', i, 'pipeline'] : ['pipeline'],
      message: `the top-level ipFilter/trustedProxies apply to every route: list ipFilter first in this pipeline (or set ipFilter: false on routes[${i}])`,
    });
  });
}
