// rxgate's public API. Stages are Policies: (next: Handler) => Handler.
export type { Body, BodySink, Clock, GatewayRequest, GatewayResponse, Handler, Policy, RequestHeaders, RequestLocals, ResponseHeaders } from './types.ts';
export { compose } from './compose.ts';
export { BufferedBody, collectBody, tapBody } from './body.ts';
export { parseDuration, type Duration } from './duration.ts';
export * from './errors.ts';
export { Gateway, type GatewayOptions, type GatewayRoute } from './gateway.ts';
export { forward, type ForwardOptions } from './upstream/forward.ts';
export { Service, Upstream, type ServiceOptions } from './upstream/service.ts';
export { HealthTracker, type HealthOptions } from './upstream/health.ts';
export { Router, type RouteDefinition, type RouteRewrite } from './router/router.ts';
export { normalizePath } from './router/normalize.ts';
export { loadConfig, parseConfig, ConfigError } from './config/load.ts';
export { buildGateway, type PipelineFactory, type RouteContext, type BuildOptions } from './config/build.ts';
export type { GatewayConfig, RouteConfig, ServiceConfig } from './config/schema.ts';
export { GatewayMetrics } from './observe/metrics.ts';
export { createLogger, silentLogger, type Logger } from './observe/log.ts';
export { runCli } from './cli.ts';
export { loadUws } from './server/uws.ts';
