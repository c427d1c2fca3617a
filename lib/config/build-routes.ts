import { compose } from '../compose.ts';
import type { GatewayEvents } from '../observe/events.ts';
import type { Logger } from '../observe/log.ts';
import type { GatewayMetrics } from '../observe/metrics.ts';
import type { Resources } from '../resources/registry.ts';
import type { Runtime } from '../runtime.ts';
import type { StageContext, StageDefinition, StageRegistry } from '../stages/define.ts';
import type { GatewayRequest, Handler, Policy } from '../types.ts';
import { forward } from '../upstream/forward.ts';
import { websocketLimits } from '../server/websocket-options.ts';
import { parseDuration } from '../duration.ts';
import { websocketForward } from '../server/ws-connect.ts';
import type { Service } from '../upstream/service.ts';
import { serviceFor } from '../upstream/service-for.ts';
import { matchHandler, requestMatcher, splitHandler } from '../upstream/traffic.ts';
import { RouteNotFoundError } from '../errors.ts';
import type { GatewayRoute } from '../router/table.ts';
import { throwError } from 'rxjs';
import { routeKey } from './checks.ts';
import { collectProblems, keyed } from './build-errors.ts';
import { defined } from './defined.ts';
import { claimHeaders, claimStripper, withoutClaimHeaders } from './claim-headers.ts';
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

/** What every build of a gateway's routes shares: the first one and each hot reload's. */
export interface RouteBuildShared {
  logger: Logger;
  metrics: GatewayMetrics;
  runtime: Runtime;
  resources: Resources;
  stages: StageRegistry;
  events: GatewayEvents;
  pipeline: PipelineFactory;
  /** `limits.maxWebSocketMessage` as the edge was built with it (a reload does not change uWS's): caps each route's `websocket.maxMessageSize`. */
  maxWebSocketMessage?: number;
}

/** A config's route table, and what its health view reads. */
export interface BuiltRoutes {
  routes: GatewayRoute[];
  services: Set<Service>;
}

/**
 * Builds the route table of `config`: one `Service` per service (from the
 * resource registry, so an unchanged one is the running one), and per route
 * the handler the pipeline factory composes. Throws `ConfigBuildError` (a
 * `TypeError`) listing every option a stage, service or route refuses, each
 * under its key path.
 */
export function buildRoutes(config: GatewayConfig, shared: RouteBuildShared): BuiltRoutes {
  const { resources, runtime, events, logger, metrics, stages } = shared;
  const out: BuiltRoutes = { routes: [], services: new Set() };
  const serviceOf = (name: string, sc: ServiceConfig): Service => {
    try {
      return serviceFor(name, sc, resources, runtime, events);
    } catch (err) {
      throw keyed(err, ['services', name], [`service ${name}`], Object.keys(sc));
    }
  };
  const built = collectProblems(config.routes, (route, index) => {
    const backends = (route.backends ?? [{ service: route.service, weight: 1 }]).map((b) => {
      const serviceConfig = config.services[b.service]!;
      const service = serviceOf(b.service, serviceConfig);
      out.services.add(service);
      const own = { ...route, service: b.service };
      const ctx = routeContext({ config, route: own, serviceConfig, service, runtime, events, logger, resources, metrics }, stages, index, shared.maxWebSocketMessage);
      return { weight: b.weight, handler: shared.pipeline(ctx), name: ctx.routeName, ctx };
    });
    // A mirror's shadow service is in the health view too (the same object its stage gets).
    const shadow = (route.mirror as { service?: string } | false | undefined || undefined)?.service;
    if (shadow !== undefined && config.services[shadow] !== undefined) out.services.add(serviceOf(shadow, config.services[shadow]));
    // The router's 405 on this path goes through the route's cors, so a page can read it.
    const first = backends[0]!.ctx;
    const refusal = first.pipeline.includes('cors') ? first.stage('cors') : null;
    return { route, index, name: backends[0]!.name, handler: splitHandler(backends, runtime), refusal };
  }, (err, route, index) => keyed(err, ['routes', index], [`route ${route.name ?? route.path}`], Object.keys(route)));
  out.routes = tableRoutes(built, claimHeaders(config));
  return out;
}

/**
 * Table entries: routes with the same path and methods become one entry
 * that tries them in order by their `match` (none: always), 404 when none
 * holds. They must rewrite alike, the table applying the rewrite.
 */
function tableRoutes(built: ReadonlyArray<{ route: RouteConfig; index: number; name: string; handler: Handler; refusal: Policy | null }>, claims: readonly string[]): GatewayRoute[] {
  const groups: Array<Array<(typeof built)[number]>> = [];
  // Groups a later route may still join: none on its path that allows one of its methods came between.
  const open = new Map<string, Array<(typeof built)[number]>>();
  for (const b of built) {
    const key = routeKey(b.route, false);
    const group = open.get(key);
    if (group !== undefined) {
      group.push(b);
      continue;
    }
    for (const [k, g] of open) if (g[0]!.route.path === b.route.path && sameHosts(g[0]!.route, b.route) && methodsOverlap(g[0]!.route.methods, b.route.methods)) open.delete(k);
    groups.push([b]);
    open.set(key, groups[groups.length - 1]!);
  }
  return collectProblems(groups, (group) => {
    const first = group[0]!;
    const { route } = first;
    const unlike = group.find((b) => JSON.stringify(b.route.rewrite) !== JSON.stringify(route.rewrite));
    if (unlike !== undefined) {
      throw keyed(new TypeError(`routes on ${route.path} differ only by match, so they must rewrite alike`), ['routes', unlike.index, 'rewrite']);
    }
    const matcher = (b: (typeof group)[number]): ReturnType<typeof requestMatcher> | null => {
      try {
        return b.route.match === undefined ? null : requestMatcher(defined(b.route.match));
      } catch (err) {
        throw keyed(err, ['routes', b.index, 'match'], ['match']);
      }
    };
    const members = group.map((b) => ({ match: matcher(b), handler: group.length === 1 ? b.handler : named(b.name, b.handler) }));
    const handler = group.length === 1 && route.match === undefined ? first.handler : matchHandler(members,
      (req) => throwError(() => new RouteNotFoundError(`no route for ${req.method} ${req.normalizedPath} matches this request`)));
    // When none of the entry's routes matches, the table goes on to the next route on the path.
    const tests = members.map((m) => m.match);
    // The client's copies of claim headers go before the test, as before the route's own (a match must not see them).
    const strip = claims.length === 0 ? null : claimStripper(claims);
    const when = tests.includes(null) ? null : (req: GatewayRequest): boolean => {
      strip?.(req);
      for (let i = 0; i < tests.length; i++) if (tests[i]!(req)) return true;
      return false;
    };
    // Routes sharing an entry keep encoded slashes only if every one of them does.
    const keep = group.every((b) => b.route.encodedSlashes === 'keep');
    const refusal = group.find((b) => b.refusal !== null)?.refusal ?? null;
    return {
      path: route.path,
      handler: claims.length === 0 ? handler : withoutClaimHeaders(claims, handler),
      name: first.name,
      ...(refusal !== null ? { refusal } : {}),
      ...(keep ? { encodedSlashes: 'keep' as const } : {}),
      ...(route.methods !== undefined ? { methods: route.methods } : {}),
      ...(route.rewrite !== undefined ? { rewrite: route.rewrite } : {}),
      ...(route.hosts !== undefined ? { hosts: route.hosts } : {}),
      ...(when !== null ? { when } : {}),
    };
  });
}

/** Both routes serve the same hosts (both none included): only then can one shadow the other. */
function sameHosts(a: RouteConfig, b: RouteConfig): boolean {
  return routeKey({ path: '', hosts: a.hosts }, false) === routeKey({ path: '', hosts: b.hosts }, false);
}

/** The matched route's name for metrics and logs, when routes share a table entry. */
function named(name: string, handler: Handler): Handler {
  return (req) => {
    req.locals.route = name;
    return handler(req);
  };
}

type ContextBase = Omit<RouteContext, 'routeName' | 'pipeline' | 'stage' | 'forward'>;

function routeContext(base: ContextBase, stages: StageRegistry, index: number, maxWebSocketMessage?: number): RouteContext {
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
      try {
        return def.build(value, ctx);
      } catch (err) {
        const at = writtenOnService(def.key, err, route, serviceConfig) ? ['services', route.service, def.key] : ['routes', index, def.key];
        throw keyed(err, at, [def.key, def.name, `route ${ctx.routeName}`], isObject(value) ? Object.keys(value) : []);
      }
    },
    forward() {
      const streamIdle = route.streamIdleTimeout ?? false;
      const http = forward(base.service, {
        preserveHost: route.preserveHost ?? false, events: base.events,
        streamIdleTimeoutMs: streamIdle === false ? 0 : parseDuration(streamIdle, `route ${ctx.routeName} streamIdleTimeout`),
      });
      if (route.websocket === undefined || route.websocket === false) return http;
      return websocketForward(base.service, http, {
        route: ctx.routeName, limits: websocketLimits(defined(route.websocket), `route ${ctx.routeName}`, maxWebSocketMessage), runtime: base.runtime,
        // Its identity, as checkDuplicateRoutes has it: unique in a config, and the same after a reload that leaves the route as it was.
        countKey: routeKey(route, true),
        preserveHost: route.preserveHost ?? false, events: base.events,
      });
    },
  };
  return ctx;
}

/**
 * Whether the key a stage refused (`retry.base: …`) was written on the
 * route's service and not on the route: then
 * it is reported there, once, not under each route of the service.
 */
function writtenOnService(key: string, err: unknown, route: RouteConfig, service: ServiceConfig): boolean {
  const r = (route as Record<string, unknown>)[key];
  const s = (service as Record<string, unknown>)[key];
  if (!isObject(s)) return false;
  const named = err instanceof Error ? new RegExp(`^${key}\\.(\\w+)`).exec(err.message)?.[1] : undefined;
  return named !== undefined && named in s && !(isObject(r) && named in r);
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

/** Whether two routes' methods share one (none listed: every method; HEAD goes where GET does). */
function methodsOverlap(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === undefined || b === undefined) return true;
  const withHead = (m: readonly string[]): string[] => (m.includes('GET') ? [...m, 'HEAD'] : [...m]);
  const first = new Set(withHead(a));
  return withHead(b).some((m) => first.has(m));
}
