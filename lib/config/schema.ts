import { z } from 'zod';

/**
 * The YAML config's shape, validated once at start. Every object is strict:
 * an unknown key is an error naming its path, so a typo never silently turns
 * a policy off.
 */

const durationPattern = /^\d+(\.\d+)?(ms|s|m|h)$/;
export const duration = z.union([
  z.number().nonnegative(),
  z.string().regex(durationPattern, 'expected a duration like 250ms, 30s or 5m'),
]);

const method = z.string().regex(/^[A-Za-z]+$/, 'expected an HTTP method').transform((m) => m.toUpperCase());

const url = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}, 'expected an http:// or https:// URL');

export const healthSchema = z.strictObject({
  path: z.string().startsWith('/'),
  interval: duration.optional(),
  unhealthyAfter: z.number().int().min(1).optional(),
  healthyAfter: z.number().int().min(1).optional(),
});

export const breakerSchema = z.strictObject({
  perInstance: z.boolean().optional(),
  consecutiveFailures: z.number().int().min(0).optional(),
  failureRate: z.number().min(0).max(1).optional(),
  windowType: z.enum(['time', 'count']).optional(),
  window: duration.optional(),
  windowSize: z.number().int().min(1).optional(),
  minimumCalls: z.number().int().min(1).optional(),
  slowCallDuration: duration.optional(),
  resetTimeout: duration.optional(),
  resetBackoff: z.number().min(1).optional(),
  maxResetTimeout: duration.optional(),
  probes: z.number().int().min(1).optional(),
  probeSuccesses: z.number().int().min(1).optional(),
  failureStatuses: z.array(z.number().int().min(100).max(599)).optional(),
  fallback: z.strictObject({
    status: z.number().int().min(100).max(599),
    headers: z.record(z.string(), z.string()).optional(),
    body: z.string().optional(),
  }).optional(),
});

export const retrySchema = z.strictObject({
  attempts: z.number().int().min(1).optional(),
  base: duration.optional(),
  cap: duration.optional(),
  methods: z.array(method).optional(),
  statuses: z.array(z.number().int().min(100).max(599)).optional(),
  bufferLimit: z.number().int().nonnegative().optional(),
  retryAfter: z.boolean().optional(),
  attemptsHeader: z.union([z.string(), z.null()]).optional(),
  budget: z.union([
    z.literal(false),
    z.strictObject({
      ratio: z.number().min(0).max(10).optional(),
      window: duration.optional(),
      minRetries: z.number().int().nonnegative().optional(),
    }),
  ]).optional(),
});

export const timeoutsSchema = z.strictObject({
  total: duration.optional(),
  perAttempt: duration.optional(),
  exchange: duration.optional(),
});

export const authSchema = z.union([
  z.enum(['required', 'optional', 'none']),
  z.strictObject({
    mode: z.enum(['required', 'optional', 'none']).optional(),
    secret: z.string().min(1).optional(),
    publicKey: z.string().min(1).optional(),
    jwksUrl: url.optional(),
    algorithms: z.array(z.string()).optional(),
    issuer: z.union([z.string(), z.array(z.string())]).optional(),
    audience: z.union([z.string(), z.array(z.string())]).optional(),
    clockTolerance: duration.optional(),
    requiredClaims: z.array(z.string()).optional(),
    scopes: z.array(z.string()).optional(),
    scopeClaim: z.string().optional(),
    forwardClaims: z.record(z.string(), z.string()).optional(),
    stripAuthorization: z.boolean().optional(),
    realm: z.string().optional(),
    tokenCache: z.number().int().nonnegative().optional(),
    tokenCacheTtl: duration.optional(),
    jwks: z.strictObject({ cooldown: duration.optional(), cacheMaxAge: duration.optional(), timeout: duration.optional() }).optional(),
  }),
]);

export const rateLimitSchema = z.strictObject({
  limit: z.number().int().min(1),
  window: duration,
  burst: z.number().int().min(1).optional(),
  key: z.union([
    z.enum(['ip', 'route']),
    z.strictObject({ claim: z.string() }),
    z.strictObject({ header: z.string() }),
  ]).optional(),
  store: z.enum(['memory', 'redis']).optional(),
  failOpen: z.boolean().optional(),
  /** Bucket namespace: routes with the same id share buckets. Default: the route's name or path. */
  id: z.string().optional(),
  headers: z.boolean().optional(),
});

export const cacheSchema = z.strictObject({
  ttl: duration.optional(),
  maxTtl: duration.optional(),
  maxEntrySize: z.number().int().min(1).optional(),
  statuses: z.array(z.number().int().min(100).max(599)).optional(),
  cacheAuthorized: z.boolean().optional(),
  staleWhileRevalidate: duration.optional(),
  staleIfError: duration.optional(),
  coalesce: z.boolean().optional(),
  store: z.enum(['memory', 'redis']).optional(),
});

export const cacheStoresSchema = z.strictObject({
  memory: z.strictObject({ maxBytes: z.number().int().min(1024).optional() }).optional(),
  redis: z.strictObject({ keyPrefix: z.string().optional(), timeout: duration.optional() }).optional(),
});

/** Policies a service sets for all its routes, and a route may override. */
const servicePolicies = {
  /** Largest request body accepted (bytes); 413 above it. */
  maxBodySize: z.number().int().nonnegative().optional(),
  timeouts: timeoutsSchema.optional(),
  retry: z.union([retrySchema, z.literal(false)]).optional(),
  circuitBreaker: z.union([breakerSchema, z.literal(false)]).optional(),
};

export const serviceSchema = z.strictObject({
  upstreams: z.array(url).min(1, 'needs at least one upstream URL'),
  timeout: duration.optional(),
  connections: z.number().int().min(1).optional(),
  keepAlive: duration.optional(),
  tlsVerify: z.boolean().optional(),
  tlsCa: z.string().optional(),
  health: healthSchema.optional(),
  ...servicePolicies,
});

export const routeSchema = z.strictObject({
  name: z.string().optional(),
  path: z.string().regex(/^\/[^*]*(\*)?$/, 'expected a path starting with / (":param" segments, "/*" at the end for a prefix)'),
  service: z.string(),
  methods: z.array(method).min(1).optional(),
  rewrite: z.union([
    z.strictObject({ pattern: z.string(), replacement: z.string() }),
    z.strictObject({ stripPrefix: z.string().startsWith('/') }),
  ]).optional(),
  preserveHost: z.union([z.boolean(), z.string()]).optional(),
  auth: authSchema.optional(),
  rateLimit: rateLimitSchema.optional(),
  cache: cacheSchema.optional(),
  ...servicePolicies,
});

export const configSchema = z.strictObject({
  listen: z.strictObject({
    host: z.string().optional(),
    port: z.number().int().min(0).max(65535).optional(),
  }).optional(),
  workers: z.number().int().min(1).max(64).optional(),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional() }).optional(),
  redis: z.strictObject({ url: z.string() }).optional(),
  /** Cache store settings shared by every cached route. */
  cache: cacheStoresSchema.optional(),
  /** Defaults for every route's `auth` object (keys, issuer…); routes set the mode. */
  auth: authSchema.optional(),
  services: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'service names are letters, digits, _ . -'), serviceSchema),
  routes: z.array(routeSchema).min(1, 'needs at least one route'),
}).superRefine((config, ctx) => {
  config.routes.forEach((route, i) => {
    if (!(route.service in config.services)) {
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'service'], message: `unknown service ${JSON.stringify(route.service)} (known: ${Object.keys(config.services).join(', ') || 'none'})` });
    }
    const usesRedis = route.rateLimit?.store === 'redis' || route.cache?.store === 'redis';
    if (usesRedis && config.redis === undefined) {
      ctx.addIssue({ code: 'custom', path: ['routes', i], message: 'uses store: redis but the config has no top-level redis.url' });
    }
  });
});

export type GatewayConfig = z.output<typeof configSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type RouteConfig = z.output<typeof routeSchema>;
