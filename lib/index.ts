// rxgate's public API. Stages are Policies: (next: Handler) => Handler.
export type { Attempt, Body, BodySink, Clock, GatewayRequest, GatewayResponse, Handler, Policy, RequestHeaders, RequestLocals, ResponseHeaders } from './types.ts';
export { compose } from './compose.ts';
export { BufferedBody, collectBody, tapBody } from './body.ts';
export { parseDuration, type Duration } from './duration.ts';
export * from './errors.ts';
export { Gateway, type GatewayOptions, type GatewayRoute } from './gateway.ts';
export { forward, type ForwardOptions } from './upstream/forward.ts';
export { Service, Upstream, type ServiceOptions } from './upstream/service.ts';
export { OutlierTracker } from './upstream/outlier.ts';
export { HealthTracker, type HealthOptions } from './upstream/health.ts';
export { Router, type RouteDefinition, type RouteRewrite } from './router/router.ts';
export { normalizePath } from './router/normalize.ts';
export { loadConfig, parseConfig, ConfigError } from './config/load.ts';
export { buildGateway, stagePipeline, stageRegistry, type PipelineFactory, type RouteContext, type BuildOptions } from './config/build.ts';
export { configSchema, type GatewayConfig, type RouteConfig, type ServiceConfig } from './config/schema.ts';
export { GatewayMetrics } from './observe/metrics.ts';
export { GatewayEvents, type GatewayEventMap, type GatewayEventType } from './observe/events.ts';
export { createLogger, silentLogger, type Logger } from './observe/log.ts';
export { runCli, type CliOptions } from './cli.ts';
export { loadUws } from './server/uws.ts';
export { systemRuntime, virtualRuntime, every, after, type Runtime } from './runtime.ts';
export { Resources } from './resources/registry.ts';
export { createRedisClient, redisReady, type RedisClient } from './resources/redis-client.ts';
export { InnerSubscriber } from './subscriber.ts';
// The stage model: define a stage, register it, name it in YAML.
export { defineStage, StageRegistry, type StageContext, type StageDefinition, type StageSpec } from './stages/define.ts';
export { BUILTIN_STAGES, DEFAULT_PIPELINE } from './stages/builtin.ts';
// Stages: each folder's factory (the code form), its YAML stage, its cores and stores.
export * from './stages/auth/index.ts';
export * from './stages/rate-limit/index.ts';
export * from './stages/body-limit/index.ts';
export * from './stages/cache/index.ts';
export * from './stages/timeout/index.ts';
export * from './stages/retry/index.ts';
export type { RetryEvent } from './stages/retry/retry.ts';
export * from './stages/circuit-breaker/index.ts';
