import type { z } from 'zod';
import type { StageRegistry } from '../stages/define.ts';
import { pipelineFor } from './pipeline.ts';
import type { GatewayConfig, RouteConfig } from './schema.ts';

/** The config checks that span keys (the schema's superRefine): pipeline lists against the registered stages. */

export function storeOf(options: unknown): unknown {
  return typeof options === 'object' && options !== null ? (options as { store?: unknown }).store : undefined;
}

export function checkPipeline(list: readonly string[] | undefined, path: Array<string | number>, stages: StageRegistry, ctx: z.RefinementCtx): void {
  if (list === undefined) return;
  const seen = new Set<string>();
  list.forEach((name, j) => {
    if (stages.get(name) === undefined) {
      ctx.addIssue({ code: 'custom', path: [...path, j], message: `unknown stage ${JSON.stringify(name)} (known: ${stages.names.join(', ')})` });
    } else if (seen.has(name)) {
      ctx.addIssue({ code: 'custom', path: [...path, j], message: `stage ${name} is listed twice` });
    }
    seen.add(name);
  });
}

/**
 * A stage the route's own list names must have options (or take none); a
 * stage the route configures must be in its list.
 */
export function checkRouteStages(config: GatewayConfig, route: RouteConfig, i: number, stages: StageRegistry, ctx: z.RefinementCtx): void {
  const service = config.services[route.service]!;
  const order = pipelineFor(route, config, stages);
  const explicit = route.pipeline ?? config.pipeline;
  const listed = new Set(order.map((n) => stages.get(n)?.key));
  for (const name of order) {
    const s = stages.get(name);
    if (s === undefined || s.onByDefault || explicit === undefined) continue;
    const given = route[s.key] !== undefined || (s.service && service[s.key] !== undefined);
    if (!given && !s.options.safeParse({}).success) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, s.key], message: `stage ${name} is in the pipeline but has no options here` });
    }
  }
  if (explicit === undefined) return;
  for (const s of stages) {
    if (route[s.key] !== undefined && route[s.key] !== false && !listed.has(s.key)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, s.key], message: `set, but the pipeline (${order.join(', ')}) does not list ${s.name}` });
    }
  }
}
