import { CUSTOM_STAGES_BEFORE, DEFAULT_PIPELINE } from '../stages/builtin.ts';
import type { StageRegistry } from '../stages/define.ts';
import type { GatewayConfig, RouteConfig } from './schema.ts';

const BUILTIN = new Set(DEFAULT_PIPELINE);

/**
 * A route's stages in order: its own `pipeline`, else the top-level one,
 * else the built-in order with every registered stage the route configures
 * placed before the cache.
 */
export function pipelineFor(route: RouteConfig, config: GatewayConfig, stages: StageRegistry): readonly string[] {
  const explicit = route.pipeline ?? config.pipeline;
  if (explicit !== undefined) return explicit;
  const service = config.services[route.service];
  const custom: string[] = [];
  for (const s of stages) {
    if (BUILTIN.has(s.name)) continue;
    const value = route[s.key] ?? (s.service ? service?.[s.key] : undefined);
    if (value !== undefined && value !== false) custom.push(s.name);
  }
  if (custom.length === 0) return DEFAULT_PIPELINE;
  const at = DEFAULT_PIPELINE.indexOf(CUSTOM_STAGES_BEFORE);
  return [...DEFAULT_PIPELINE.slice(0, at), ...custom, ...DEFAULT_PIPELINE.slice(at)];
}
