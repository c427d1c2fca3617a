import { compose } from '../compose.ts';
import { Gateway } from '../gateway.ts';
import { GatewayEvents } from '../observe/events.ts';
import { createLogger, logLevel, type Logger } from '../observe/log.ts';
import { GatewayMetrics } from '../observe/metrics.ts';
import { observe } from '../observe/wire.ts';
import { routeCatalog } from '../observe/catalog.ts';
import { observersFor } from '../observe/request-log.ts';
import { Tracing } from '../observe/tracing.ts';
import type { TracerProvider } from '@opentelemetry/api';
import { Resources } from '../resources/registry.ts';
import { systemRuntime, type Runtime } from '../runtime.ts';
import { BUILTIN_STAGES } from '../stages/builtin.ts';
import { StageRegistry, type StageDefinition } from '../stages/define.ts';
import { HealthSources } from '../upstream/health-sources.ts';
import { buildRoutes, type BuiltRoutes, type PipelineFactory, type RouteBuildShared } from './build-routes.ts';
import type { GatewayConfig } from './schema.ts';
import { edgeListenOptions } from './tls-schema.ts';
import { limitsFromConfig } from '../server/limits.ts';
import { capWebSocketForwards } from '../server/websocket-options.ts';
import { unresolvedClientRoutes } from '../stages/ip-filter/config-check.ts';

export type { PipelineFactory, RouteContext } from './build-routes.ts';

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
  /**
   * The OpenTelemetry tracer provider for request and attempt spans; null:
   * none (`traceparent` is still propagated). @default the one registered with `@opentelemetry/api`, if any
   */
  tracerProvider?: TracerProvider | null;
}

/** The built-in stages plus `extra`, by name. */
export function stageRegistry(extra: readonly StageDefinition[] = []): StageRegistry {
  return new StageRegistry([...BUILTIN_STAGES, ...extra]);
}

/**
 * Turns a validated config into a Gateway: one `Service` per service, and
 * per route the handler the pipeline factory composes (`stagePipeline`, the
 * route's stages in order, unless you pass your own). The gateway can
 * `reload` a later config: its routes are rebuilt against the same
 * resource registry, so what did not change carries over.
 */
export function buildGateway(config: GatewayConfig, pipeline: PipelineFactory | null = null, options: BuildOptions = {}): Gateway {
  const logger = options.logger ?? createLogger(logLevel(config.log?.level));
  const metrics = options.metrics ?? new GatewayMetrics();
  const resources = options.resources ?? new Resources();
  const events = new GatewayEvents();
  observe(events, metrics, logger);
  const tracing = new Tracing(options.tracerProvider);
  const shared: RouteBuildShared = {
    logger, metrics, resources, events,
    runtime: options.runtime ?? systemRuntime,
    stages: stageRegistry(options.stages),
    pipeline: pipeline ?? stagePipeline,
    ...(config.limits?.maxWebSocketMessage !== undefined ? { maxWebSocketMessage: config.limits.maxWebSocketMessage } : {}),
  };
  // One health view for the gateway's life: a reload swaps the services it reads.
  const health = new HealthSources(events);
  const show = (built: BuiltRoutes): void => {
    health.services.clear();
    for (const s of built.services) health.services.add(s);
  };
  // The forwards built below are this gateway's (its events): checked as they are built, so a refusal names its route's key path.
  capWebSocketForwards(events, config.limits?.maxWebSocketMessage);
  const first = buildRoutes(config, shared);
  warnUnresolvedClients(config, logger);
  show(first);
  metrics.describe(routeCatalog(config, shared.stages), first.services);
  const gateway: Gateway = new Gateway({
    host: options.host ?? config.listen?.host ?? '0.0.0.0',
    port: options.port ?? config.listen?.port ?? 8080,
    ...(config.requestId !== undefined ? { requestId: config.requestId } : {}),
    ...edgeListenOptions(config.listen),
    routes: first.routes, logger, metrics, events,
    observers: observersFor(config, logger, tracing),
    publicMetrics: config.metrics?.public ?? false,
    limits: limitsFromConfig(config.limits, config.trustedProxies),
    beforeListen: () => resources.ready(),
    health: () => health.report(),
    onClose: () => resources.close(),
    async rebuild(next) {
      resources.track();
      let built: BuiltRoutes;
      try {
        built = buildRoutes(next, shared);
        // New services' discovery, a new Redis client: ready before they serve.
        await resources.ready();
      } catch (err) {
        await resources.abandon();
        throw err;
      }
      gateway.replaceRoutes(built.routes);
      warnUnresolvedClients(next, logger);
      gateway.observe(observersFor(next, logger, tracing));
      show(built);
      metrics.describe(routeCatalog(next, shared.stages), built.services);
      return resources.retire();
    },
  });
  return gateway;
}

/** `ipFilter: false` beside `trustedProxies` and a rate limit keyed by ip: one bucket per proxy (see `unresolvedClientRoutes`). */
function warnUnresolvedClients(config: GatewayConfig, logger: Logger): void {
  const routes = unresolvedClientRoutes(config);
  if (routes.length > 0) {
    logger.warn({ routes }, 'ipFilter: false resolves no client behind trustedProxies on these routes: their rateLimit by ip counts every client behind a proxy as that proxy (ipFilter: { allow: [], deny: [] } keeps resolving)');
  }
}
