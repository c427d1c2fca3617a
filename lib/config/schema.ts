import { z } from 'zod';
import { BUILTIN_STAGES } from '../stages/builtin.ts';
import { authOptions } from '../stages/auth/schema.ts';
import { cacheStoresOptions } from '../stages/cache/schema.ts';
import { ipFilterOptions, trustedProxiesOption } from '../stages/ip-filter/schema.ts';
import { StageRegistry, type StageDefinition } from '../stages/define.ts';
import { balancerNames } from '../upstream/balancer.ts';
import '../upstream/balancers.ts';
import { dnsServer, duration, httpUrl, listenPort, method, port, positiveTimer, regexSource, status, timerDuration } from './common.ts';
import { crossKeyChecks } from './cross-checks.ts';
import { websocketOptions } from '../server/websocket-options.ts';
import { logOptions, routeLogOptions } from '../observe/log-options.ts';
import { limitsSchema } from '../server/limits-schema.ts';
import { HOST_PATTERN } from '../router/hosts.ts';
import { listenTlsSchema, redirectHttpSchema, upstreamTlsSchema } from './tls-schema.ts';
import { lifecycleKeys } from '../lifecycle/schema.ts';

/**
 * The YAML config's shape, validated once at start. The fixed part is here;
 * each registered stage adds its options key to routes (and services, for
 * stages a service may set), so the schema of a gateway with a custom stage
 * validates that stage's options too. Every object is strict: an unknown key
 * is an error naming its path, so a typo never silently turns a policy off.
 */

export { duration } from './common.ts';

export const healthSchema = z.strictObject({
  path: z.string().startsWith('/'),
  // Checked here, not only by the probes when they start: `--check` builds services without probing.
  interval: positiveTimer.optional(),
  timeout: positiveTimer.optional(),
  expectedStatuses: z.array(status).min(1).optional(),
  unhealthyAfter: z.number().int().min(1).optional(),
  healthyAfter: z.number().int().min(1).optional(),
});

const stageName = z.string().regex(/^[A-Za-z][A-Za-z0-9]*$/, 'expected a stage name');

/** An instance: a URL, or `{ url, weight }`. */
const upstreamSpec = z.union([httpUrl, z.strictObject({ url: httpUrl, weight: z.number().positive().optional() })]);

export const hashSchema = z.strictObject({
  header: z.string().min(1).optional(),
  cookie: z.string().min(1).optional(),
  ip: z.boolean().optional(),
  loadFactor: z.number().min(1).optional(),
}).refine((h) => [h.header, h.cookie, h.ip === true ? true : undefined].filter((v) => v !== undefined).length <= 1, 'set one of header, cookie or ip');

/** A registered balancer's name (checked when the config is parsed, so balancers registered in code count). */
const balancerName = z.string().superRefine((name, ctx) => {
  if (!balancerNames().includes(name)) ctx.addIssue({ code: 'custom', message: `unknown balancer ${JSON.stringify(name)} (known: ${balancerNames().join(', ')})` });
});

const dnsDiscovery = z.strictObject({
  name: z.string().min(1),
  type: z.enum(['A', 'AAAA', 'A+AAAA', 'SRV']).optional(),
  port: port.optional(),
  scheme: z.enum(['http', 'https']).optional(),
  servers: z.array(dnsServer).min(1).optional(),
  // 0 re-resolved a name with TTL 0 on every loop turn (a busy loop of DNS queries); maxInterval is at least minInterval.
  minInterval: positiveTimer.optional(),
  maxInterval: timerDuration.optional(),
});

// 0 was refused inside the discovery's promise at start: no key path, and an unhandled rejection under --check.
const fileDiscovery = z.strictObject({ path: z.string().min(1), interval: positiveTimer.optional() });

const serviceBase = z.strictObject({
  /** Static instances; with `discovery`, the ones used until it answers (may be left out). */
  upstreams: z.array(upstreamSpec).min(1, 'needs at least one upstream URL').optional(),
  discovery: z.strictObject({ dns: dnsDiscovery.optional(), file: fileDiscovery.optional() }).optional(),
  /** How an instance is chosen; default p2c-ewma with more than one instance. */
  balancer: balancerName.optional(),
  hash: hashSchema.optional(),
  timeout: timerDuration.optional(),
  connections: z.number().int().min(1).optional(),
  /** Requests waiting for a connection per instance, at most; one more is 503 UPSTREAM_OVERLOADED (default 1024). */
  maxPending: z.number().int().min(0).optional(),
  /** Time allowed to open a connection to an instance (default 10s). */
  connectTimeout: positiveTimer.optional(),
  keepAlive: duration.optional(),
  tlsVerify: z.boolean().optional(),
  tlsCa: z.string().optional(),
  /** https upstreams: ca, client cert/key (mTLS), passphrase, servername, rejectUnauthorized, pin. */
  tls: upstreamTlsSchema.optional(),
  health: healthSchema.optional(),
  /** Passive ejection: an instance that refused or timed out `ejectAfter` times in a row is out this long (0: off). */
  ejectFor: duration.optional(),
  ejectAfter: z.number().int().min(1).optional(),
  maxEjectFor: duration.optional(),
  /** Upstream statuses that are also strikes towards ejection (e.g. [502, 503, 504]). */
  ejectOnStatuses: z.array(status).optional(),
  /** Never more than this share of the instances ejected at once (percent). */
  maxEjectionPercent: z.number().min(0).max(100).optional(),
  /** When every instance is out, use them anyway (true) or answer 503 at once (false). */
  panic: z.boolean().optional(),
});

const valueMatch = z.union([z.string(), z.boolean(), z.strictObject({ regex: regexSource })]);

/** Conditions on headers, query parameters and cookies, beyond path and method. */
export const matchSchema = z.strictObject({
  headers: z.record(z.string(), valueMatch).optional(),
  query: z.record(z.string(), valueMatch).optional(),
  cookies: z.record(z.string(), valueMatch).optional(),
});

const routeBase = z.strictObject({
  name: z.string().optional(),
  path: z.string().regex(/^\/[^*]*(\*)?$/, 'expected a path starting with / (":param" segments, "/*" at the end for a prefix)'),
  /** The service; or `backends` for a weighted split between services. */
  service: z.string().optional(),
  backends: z.array(z.strictObject({ service: z.string(), weight: z.number().min(0) })).min(1).optional(),
  /** Host names the route serves (`api.example.com`, `*.example.com`, no port); none: any host. */
  hosts: z.array(z.string().regex(HOST_PATTERN, 'expected a host name without a port (api.example.com), or *. and a domain (*.example.com)')).min(1).optional(),
  match: matchSchema.optional(),
  methods: z.array(method).min(1).optional(),
  rewrite: z.union([
    z.strictObject({ pattern: regexSource, replacement: z.string() }),
    z.strictObject({ stripPrefix: z.string().startsWith('/') }),
  ]).optional(),
  preserveHost: z.union([z.boolean(), z.string()]).optional(),
  /** A path with `%2F`, `%5C` or a raw `\`: `reject` (default) answers 400; `keep` forwards it as received. */
  encodedSlashes: z.enum(['reject', 'keep']).optional(),
  /** Accept WebSocket upgrades here and proxy them to the service (`true`, or limits). */
  websocket: z.union([z.boolean(), websocketOptions]).optional(),
  /** Longest gap between two chunks of a `text/event-stream` response; `false` (default): none. */
  streamIdleTimeout: z.union([timerDuration, z.literal(false)]).optional(),
  /** `{ access: false }`: this route's requests stay out of the access log. */
  log: routeLogOptions.optional(),
  /** The route's stages in order; default: the top-level `pipeline`, else the built-in order. */
  pipeline: z.array(stageName).optional(),
});

const topLevel = {
  listen: z.strictObject({
    host: z.string().optional(),
    port: listenPort.optional(),
    /** Serve HTTPS: cert, key, passphrase, ciphers, sni (more certificates by server name). */
    tls: listenTlsSchema.optional(),
    /** A plain-HTTP listener on `port` answering 301/308 to the same URL on HTTPS (needs tls). */
    redirectHttp: redirectHttpSchema.optional(),
  }).refine((l) => l.redirectHttp === undefined || l.tls !== undefined, { message: 'redirectHttp needs tls', path: ['redirectHttp'] }).optional(),
  workers: z.number().int().min(1).max(64).optional(),
  /** Level, access log, what it may show (lib/observe/log-options.ts). */
  log: logOptions.optional(),
  redis: z.strictObject({ url: z.string() }).optional(),
  /** Cache store settings shared by every cached route. */
  cache: cacheStoresOptions.optional(),
  /** Defaults for every route's `auth` object (keys, issuer…); routes set the mode. */
  auth: authOptions.optional(),
  /** Every route's stages in order, unless a route lists its own. */
  pipeline: z.array(stageName).optional(),
  /** Peers (CIDRs) whose X-Forwarded-For is believed: the client is the first untrusted hop from the right. */
  trustedProxies: trustedProxiesOption.optional(),
  /** How a request without X-Request-Id gets one: `counter` (a per-process random prefix and a counter) or `uuid`. */
  requestId: z.enum(['counter', 'uuid']).optional(),
  /** allow/deny CIDRs for every route; a route's `ipFilter` keys replace these. */
  ipFilter: ipFilterOptions.optional(),
  /** Edge limits: head bytes and lines (431), target length (414), body idle (408), requests per client (429). */
  limits: limitsSchema.optional(),
  /** admin, drain, reload, metrics.public (lib/lifecycle/schema.ts). */
  ...lifecycleKeys,
};

/** Stage options by YAML key; what each registered stage adds to a route or service. */
type StageKeys = { readonly [key: string]: unknown };
export type ServiceConfig = z.output<typeof serviceBase> & StageKeys;
/** A route as built: `service` is its own, or its first backend's. */
export type RouteConfig = Omit<z.output<typeof routeBase>, 'service'> & { service: string } & StageKeys;
export type GatewayConfig = {
  [K in keyof typeof topLevel]?: z.output<(typeof topLevel)[K]>;
} & { services: Record<string, ServiceConfig>; routes: RouteConfig[] };

/** The config schema for the built-in stages plus `extra` ones registered in code. */
export function configSchema(stages: StageRegistry = new StageRegistry(BUILTIN_STAGES)): z.ZodType<GatewayConfig> {
  const routeKeys: Record<string, z.ZodType> = {};
  const serviceKeys: Record<string, z.ZodType> = {};
  for (const s of stages) {
    const option = z.union([s.options, z.literal(false)]).optional();
    routeKeys[s.key] = option;
    if (s.service) serviceKeys[s.key] = option;
  }
  const service = serviceBase.extend(serviceKeys);
  const route = routeBase.extend(routeKeys);
  const schema = z.strictObject({
    ...topLevel,
    services: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'service names are letters, digits, _ . -'), service),
    routes: z.array(route).min(1, 'needs at least one route'),
  }).superRefine(...crossKeyChecks(stages));
  // A route with backends gets its first backend as `service` (for the
  // stages that key on the route's service), so every route has one.
  const filled = schema.transform((config) => ({
    ...config,
    routes: config.routes.map((r) => {
      const route = r as { service?: string; backends?: Array<{ service: string }> };
      return route.service === undefined && route.backends !== undefined ? { ...r, service: route.backends[0]!.service } : r;
    }),
  }));
  // The schema is assembled at run time from the registered stages, so its
  // inferred type is only Record-shaped; GatewayConfig is what it checks.
  return filled as unknown as z.ZodType<GatewayConfig>;
}

export type { StageDefinition };
