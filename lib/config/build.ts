import { compose } from '../compose.ts';
import { Gateway } from '../gateway.ts';
import { GatewayEvents } from '../observe/events.ts';
import { createLogger, type Logger } from '../observe/log.ts';
import { GatewayMetrics } from '../observe/metrics.ts';
import { observe } from '../observe/wire.ts';
import { Resources } from '../resources/registry.ts';
import { systemRuntime, type Runtime } from '../runtime.ts';
import { BUILTIN_STAGES } from '../stages/builtin.ts';
import { instanceBreakers } from '../stages/circuit-breaker/index.ts';
import { StageRegistry, type StageContext, type StageDefinition } from '../stages/define.ts';
import type { Handler, Policy } from '../types.ts';
import { forward } from '../upstream/forward.ts';
import { Service } from '../upstream/service.ts';
import { HealthSources } from '../upstream/health-sources.ts';
import { defined } from './defined.ts';
import { pipelineFor } from './pipeline.ts';
import type { GatewayConfig, RouteConfig, ServiceConfig } from './schema.ts';

/** What a pipeline factory gets for one route of a YAML config. */
export interface RouteContext extends StageContext {
  readonly metrics: GatewayMetrics;
  /** The route's stages in order (its `pipeline`, the top-level one, or the default). */
  readonly pipeline: readonly string[];
  /** Builds the registered stage `name` for this route with its options; null when it is off here. */
  stage(name: string): Policy | null;
  /** The terminal stage: forwards to the route's service. */
  forward(): Handler;
}

export type PipelineFactory = (ctx: RouteContext) => Handler;

/** The pipeline every YAML route gets unless you pass your own: its stages in order, then forward. */
export const stagePipeline: PipelineFactory = (ctx) => compose(...ctx.pipeline.map((name) => ctx.stage(name)))(ctx.forward());

export interface BuildOptions {
  logger?: Logger;
  metrics?: GatewayMetrics;
  /** Overrides `listen.port` (the CLI's `--port`). */
  port?: number;
  host?: string;
  /** Stages registered in code, usable by name from YAML (give the same list to `parseConfig`). */
  stages?: readonly StageDefinition[];
  /** Scheduler, clocks and randomness for every stage, store and probe. @default systemRuntime */
  runtime?: Runtime;
  /** A registry to take shared objects from (a rebuild reuses its predecessor's). @default a new one */
  resources?: Resources;
}

/** The built-in stages plus `extra`, by name. */
export function stageRegistry(extra: readonly StageDefinition[] = []): StageRegistry {
  return new StageRegistry([...BUILTIN_STAGES, ...extra]);
}

/**
 * Turns a validated config into a Gateway: one `Service` per service, and
 * per route the handler the pipeline factory composes (`stagePipeline`, the
 * route's stages in order, unless you pass your own).
 */
export function buildGateway(config: GatewayConfig, pipeline: PipelineFactory | null = null, options: BuildOptions = {}): Gateway {
  const logger = options.logger ?? createLogger(config.log?.level);
  const metrics = options.metrics ?? new GatewayMetrics();
  const runtime = options.runtime ?? systemRuntime;
  const resources = options.resources ?? new Resources();
  const stages = stageRegistry(options.stages);
  const events = new GatewayEvents();
  observe(events, metrics, logger);
  const build = pipeline ?? stagePipeline;
  const health = new HealthSources(events);

  const routes = config.routes.map((route) => {
    const serviceConfig = config.services[route.service]!;
    const service = serviceFor(route.service, serviceConfig, resources, runtime, events);
    health.services.add(service);
    const ctx = routeContext({ config, route, serviceConfig, service, runtime, events, logger, resources, metrics }, stages, health);
    return {
      path: route.path,
      handler: build(ctx),
      name: ctx.routeName,
      ...(route.methods !== undefined ? { methods: route.methods } : {}),
      ...(route.rewrite !== undefined ? { rewrite: route.rewrite } : {}),
    };
  });
  return new Gateway({
    host: options.host ?? config.listen?.host ?? '0.0.0.0',
    port: options.port ?? config.listen?.port ?? 8080,
    routes, logger, metrics,
    beforeListen: () => resources.ready(),
    health: () => health.report(),
    onClose: () => resources.close(),
  });
}

function serviceFor(name: string, sc: ServiceConfig, resources: Resources, runtime: Runtime, events: GatewayEvents): Service {
  const { upstreams, balancer, hash, timeout, connections, keepAlive, tlsVerify, tlsCa, health, ejectFor, ejectAfter, maxEjectFor, maxEjectionPercent, panic } = sc;
  const own = defined({ balancer, timeout, connections, keepAlive, tlsVerify, tlsCa, ejectFor, ejectAfter, maxEjectFor, maxEjectionPercent, panic });
  const extra = {
    ...(hash !== undefined ? { hash: defined(hash) } : {}),
    ...(health !== undefined ? { health: defined(health) } : {}),
  };
  const specs = upstreams.map((u) => typeof u === 'string' ? u : defined(u));
  return resources.get(`service:${name}:${JSON.stringify({ upstreams, ...own, ...extra })}`, () => new Service(name, { ...own, ...extra, upstreams: specs, runtime, events }), (s) => s.close());
}

type ContextBase = Omit<RouteContext, 'routeName' | 'pipeline' | 'stage' | 'forward'>;

function routeContext(base: ContextBase, stages: StageRegistry, health: HealthSources): RouteContext {
  const { route, config, serviceConfig } = base;
  const order = pipelineFor(route, config, stages);
  const explicit = route.pipeline ?? config.pipeline;
  const ctx: RouteContext = {
    ...base,
    routeName: route.name ?? route.path,
    pipeline: order,
    stage(name) {
      const def = stages.get(name);
      if (def === undefined) throw new TypeError(`unknown stage ${JSON.stringify(name)} (known: ${stages.names.join(', ')})`);
      let value = optionsFor(def, route, serviceConfig);
      if (value === false) return null;
      if (value === undefined) {
        if (!def.onByDefault && !(explicit?.includes(name) ?? false)) return null;
        value = def.options.parse({});
      }
      return def.build(value, ctx);
    },
    forward() {
      const breaker = stages.get('circuitBreaker');
      const perInstance = breaker === undefined ? {} : instanceBreakers(optionsFor(breaker, route, serviceConfig), ctx);
      if (perInstance.breakers !== undefined) health.instanceBreakers.set(perInstance.breakers, base.service.name);
      return forward(base.service, { preserveHost: route.preserveHost ?? false, events: base.events, ...perInstance });
    },
  };
  return ctx;
}

/** A stage's options for a route: the route's object merged over its service's; `false` on either turns it off. */
function optionsFor(def: StageDefinition, route: RouteConfig, service: ServiceConfig): unknown {
  const r = route[def.key];
  if (!def.service) return r;
  const s = service[def.key];
  if (r === false || (r === undefined && s === false)) return false;
  if (r === undefined) return s;
  if (s === undefined || s === false) return r;
  return isObject(r) && isObject(s) ? { ...s, ...r } : r;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
