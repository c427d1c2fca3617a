import { pipelineFor } from '../config/pipeline.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { StageRegistry } from '../stages/define.ts';
import type { RouteInfo } from './metrics.ts';

/**
 * The config's routes as the admin page lists them: name, path, methods,
 * services, and the stages that are on for each (in order, then forward).
 * A stage is on as `buildGateway` decides: configured on the route or its
 * service and not `false`, or on by default, or named in an explicit pipeline.
 */
export function routeCatalog(config: GatewayConfig, stages: StageRegistry): RouteInfo[] {
  return config.routes.map((route) => {
    const explicit = route.pipeline ?? config.pipeline;
    const service = config.services[route.service] as Record<string, unknown> | undefined;
    const own = route as unknown as Record<string, unknown>;
    const on = pipelineFor(route, config, stages).filter((name) => {
      const def = stages.get(name);
      if (def === undefined) return false;
      const r = own[def.key];
      const s = def.service ? service?.[def.key] : undefined;
      if (r === false || (r === undefined && s === false)) return false;
      if (r !== undefined || s !== undefined) return true;
      return def.onByDefault || (explicit?.includes(name) ?? false);
    });
    return {
      name: route.name ?? route.path,
      path: route.path,
      methods: route.methods ?? null,
      services: route.backends?.map((b) => b.service) ?? [route.service],
      stages: [...on, 'forward'],
    };
  });
}
