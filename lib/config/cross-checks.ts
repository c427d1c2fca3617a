import type { z } from 'zod';
import { checkGatewayWideIpFilter } from '../stages/ip-filter/config-check.ts';
import type { StageRegistry } from '../stages/define.ts';
import { checkAuthKeys, checkDuplicateRoutes, checkPerInstance, checkPipeline, checkRouteStages, storeOf } from './checks.ts';
import type { GatewayConfig, RouteConfig } from './schema.ts';

type Loose = Record<string, unknown>;
type Issue = z.core.$ZodRawIssue;

/**
 * The checks that span keys (a route's service exists, pipelines, auth key
 * mixes, duplicate routes…), as the config schema's `superRefine` arguments.
 * They run beside the schema's own issues, so a config with a typo in one
 * route and an unknown service in another gets both in one answer; they
 * need only `services` to be an object of objects and `routes` a list of
 * objects. A problem at or under a key the schema already refused is left
 * out (`routes[0].service: expected string` says enough), and a check that
 * stumbles on a value the schema refused is skipped.
 */
export function crossKeyChecks(stages: StageRegistry): [(config: Loose, ctx: z.RefinementCtx) => void, { when: (payload: { value: unknown; issues: readonly Issue[] }) => boolean }] {
  let refused: Array<readonly PropertyKey[]> = [];
  const check = (config: Loose, ctx: z.RefinementCtx): void => {
    const faulted = refused;
    const add = ctx.addIssue.bind(ctx);
    const own: z.RefinementCtx = Object.assign(Object.create(ctx) as z.RefinementCtx, {
      addIssue(issue: Parameters<z.RefinementCtx['addIssue']>[0]) {
        const path = typeof issue === 'string' ? [] : issue.path ?? [];
        if (!faulted.some((p) => prefixOf(p, path) || prefixOf(path, p))) add(issue);
      },
    });
    const guard = (fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        // A value the schema refused; on a config it accepted, a bug to see.
        if (faulted.length === 0) throw err;
      }
    };
    crossKeys(config, own, stages, guard);
  };
  return [check, {
    when(payload) {
      refused = payload.issues.map((i) => i.path ?? []);
      const v = payload.value as Loose | null;
      return isObject(v) && isObject(v['services']) && Object.values(v['services']).every(isObject)
        && Array.isArray(v['routes']) && v['routes'].every(isObject);
    },
  }];
}

function crossKeys(config: Loose, ctx: z.RefinementCtx, stages: StageRegistry, guard: (fn: () => void) => void): void {
  const gateway = config as unknown as GatewayConfig;
  const services = gateway.services as Record<string, Loose>;
  guard(() => checkPipeline(gateway.pipeline, ['pipeline'], stages, ctx));
  guard(() => checkGatewayWideIpFilter(gateway, stages, ctx));
  guard(() => checkDuplicateRoutes(gateway.routes, ctx));
  for (const [name, svc] of Object.entries(services)) {
    const { upstreams, discovery } = svc as { upstreams?: unknown[]; discovery?: Record<string, unknown> };
    if (upstreams === undefined && Object.values(discovery ?? {}).every((d) => d === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['services', name, 'upstreams'], message: 'needs at least one upstream URL, or discovery' });
    }
  }
  gateway.routes.forEach((r, i) => guard(() => {
    const given = r as Loose & { service?: string; backends?: Array<{ service: string }> };
    if ((given.service === undefined) === (given.backends === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'service'], message: 'set service, or backends (not both)' });
      return;
    }
    const names = given.backends?.map((b) => b.service) ?? [given.service!];
    const unknown = names.find((n) => !(n in services));
    if (unknown !== undefined) {
      const where = given.backends === undefined ? ['routes', i, 'service'] : ['routes', i, 'backends', names.indexOf(unknown), 'service'];
      ctx.addIssue({ code: 'custom', path: where, message: `unknown service ${JSON.stringify(unknown)} (known: ${Object.keys(services).join(', ') || 'none'})` });
      return;
    }
    const mirrored = (given as { mirror?: { service?: unknown } }).mirror?.service;
    if (typeof mirrored === 'string' && !(mirrored in services)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'mirror', 'service'], message: `unknown service ${JSON.stringify(mirrored)} (known: ${Object.keys(services).join(', ')})` });
    }
    const routeCfg = { ...given, service: names[0]! } as RouteConfig;
    guard(() => checkPipeline(routeCfg.pipeline, ['routes', i, 'pipeline'], stages, ctx));
    for (const name of new Set(names)) guard(() => checkRouteStages(gateway, { ...routeCfg, service: name }, i, stages, ctx));
    guard(() => checkPerInstance(gateway, routeCfg, i, ctx));
    guard(() => checkAuthKeys(gateway, routeCfg, i, ctx));
    // At the store key itself, so a refusal elsewhere under the route does not hide it.
    for (const key of ['rateLimit', 'cache'] as const) {
      if (storeOf(routeCfg[key]) === 'redis' && gateway.redis === undefined) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, key, 'store'], message: 'uses store: redis but the config has no top-level redis.url' });
      }
    }
  }));
}

function isObject(v: unknown): v is Loose {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function prefixOf(a: readonly PropertyKey[], b: readonly PropertyKey[]): boolean {
  return a.length <= b.length && a.every((k, i) => k === b[i]);
}
