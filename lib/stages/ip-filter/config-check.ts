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

/**
 * The routes that turn the stage off with `ipFilter: false` while
 * `trustedProxies` is set and keep a rate limit keyed by the client's
 * address (`key: ip`, the default): off, the stage resolves no address
 * there, so every client behind a trusted proxy is counted as that proxy.
 * A claim or header key is not named: it counts by the client's address
 * only for a request without that claim or header, which a config cannot
 * tell (docs/known-behaviour.md says so). Logged as a warning at start and
 * on each reload (refusing them would break configs that run);
 * `ipFilter: { allow: [], deny: [] }` clears the lists and keeps resolving.
 */
export function unresolvedClientRoutes(config: GatewayConfig): string[] {
  if ((config.trustedProxies ?? []).length === 0) return [];
  const out: string[] = [];
  config.routes.forEach((route, i) => {
    const limit = route['rateLimit'] as { key?: unknown } | false | undefined;
    if (route.ipFilter !== false || limit === undefined || limit === false) return;
    if (limit.key !== undefined && limit.key !== 'ip') return;
    out.push(`routes[${i}] (${route.name ?? route.path})`);
  });
  return out;
}
