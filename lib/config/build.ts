import { Gateway } from '../gateway.ts';
import { createLogger, type Logger } from '../observe/log.ts';
import { GatewayMetrics } from '../observe/metrics.ts';
import type { Handler } from '../types.ts';
import { Service, type ServiceOptions } from '../upstream/service.ts';
import type { GatewayConfig, RouteConfig, ServiceConfig } from './schema.ts';

/** What a pipeline factory gets for one route of a YAML config. */
export interface RouteContext {
  config: GatewayConfig;
  route: RouteConfig;
  /** The route's service as configured (its breaker/retry defaults live here). */
  serviceConfig: ServiceConfig;
  /** The running service: instances, pools, health. */
  service: Service;
  logger: Logger;
  metrics: GatewayMetrics;
  /** Objects shared across routes (Redis clients, breakers per service…), by key. */
  shared: Map<string, unknown>;
  /** Cleanup to run when the gateway closes (e.g. quitting Redis clients). */
  onClose(fn: () => Promise<void> | void): void;
  /** Work to await before the gateway listens (e.g. connecting to Redis). */
  beforeListen(fn: () => Promise<void>): void;
}

export type PipelineFactory = (ctx: RouteContext) => Handler;

export interface BuildOptions {
  logger?: Logger;
  metrics?: GatewayMetrics;
  /** Overrides `listen.port` (the CLI's `--port`). */
  port?: number;
  host?: string;
}

/**
 * Turns a validated config into a Gateway: one `Service` per service, and
 * per route the handler the pipeline factory composes (pipeline.ts's
 * `defaultPipeline` unless you pass your own).
 */
export function buildGateway(config: GatewayConfig, pipeline: PipelineFactory, options: BuildOptions = {}): Gateway {
  const logger = options.logger ?? createLogger(config.log?.level);
  const metrics = options.metrics ?? new GatewayMetrics();
  const services = new Map<string, Service>();
  for (const [name, sc] of Object.entries(config.services)) {
    // zod's output marks absent keys `| undefined`; absent keys are simply absent.
    services.set(name, new Service(name, sc as ServiceOptions));
  }
  const shared = new Map<string, unknown>();
  const closers: Array<() => Promise<void> | void> = [];
  const starters: Array<() => Promise<void>> = [];
  const routes = config.routes.map((route) => {
    const handler = pipeline({
      config, route, serviceConfig: config.services[route.service]!, service: services.get(route.service)!,
      logger, metrics, shared, onClose: (fn) => closers.push(fn), beforeListen: (fn) => starters.push(fn),
    });
    return {
      path: route.path,
      handler,
      ...(route.name !== undefined ? { name: route.name } : {}),
      ...(route.methods !== undefined ? { methods: route.methods } : {}),
      ...(route.rewrite !== undefined ? { rewrite: route.rewrite } : {}),
    };
  });
  return new Gateway({
    host: options.host ?? config.listen?.host ?? '0.0.0.0',
    port: options.port ?? config.listen?.port ?? 8080,
    routes, logger, metrics,
    services: [...services.values()],
    beforeListen: async () => {
      await Promise.all(starters.map((fn) => fn()));
    },
    onClose: async () => {
      await Promise.all(closers.map((fn) => fn()));
    },
  });
}
