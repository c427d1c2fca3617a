import type { z } from 'zod';
import { canonicalHost } from '../router/hosts.ts';
import type { CircuitBreakerConfig } from '../stages/circuit-breaker/schema.ts';
import { HMAC_ALGORITHMS } from '../stages/auth/keys.ts';
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

/**
 * `circuitBreaker.perInstance` configures a service's outlier ejection, so it
 * belongs to the service: a route may not set it, nor tune a breaker its
 * service runs per instance (it may turn it off with `false`).
 */
export function checkPerInstance(config: GatewayConfig, route: RouteConfig, i: number, ctx: z.RefinementCtx): void {
  const own = route.circuitBreaker as CircuitBreakerConfig | false | undefined;
  if (typeof own !== 'object') return;
  const service = config.services[route.service]?.circuitBreaker as CircuitBreakerConfig | false | undefined;
  if (own.perInstance !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['routes', i, 'circuitBreaker', 'perInstance'], message: 'per-instance breaking is the service\'s outlier ejection: set it on the service' });
  } else if (typeof service === 'object' && service.perInstance === true) {
    ctx.addIssue({ code: 'custom', path: ['routes', i, 'circuitBreaker'], message: `service ${route.service} breaks per instance (outlier ejection): a route can only turn that off (false)` });
  }
}

/**
 * Two routes with the same path, methods and `match` (none included): the
 * second can never be chosen, so it is refused as nginx refuses a
 * `duplicate location`. Routes that differ by `match` or `methods` stay.
 */
export function checkDuplicateRoutes(routes: readonly RouteConfig[], ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  routes.forEach((r, i) => {
    const key = routeKey(r, true);
    const first = seen.get(key);
    if (first === undefined) seen.set(key, i);
    else ctx.addIssue({ code: 'custom', path: ['routes', i, 'path'], message: `routes[${first}] has the same path, methods and match: this route would never be used` });
  });
}

/**
 * A route's identity: its path and methods (de-duplicated and sorted, as
 * the router treats them: [GET, POST] and [POST, GET] are one), and with
 * `withMatch` its `match`. Duplicate routes, the router's table entries
 * (without match) and a WebSocket route's connection count all use it.
 */
export function routeKey(r: Pick<RouteConfig, 'path' | 'methods' | 'match' | 'hosts'>, withMatch: boolean): string {
  const methods = r.methods === undefined ? null : [...new Set(r.methods)].sort();
  const key: unknown[] = withMatch ? [r.path, methods, r.match ?? null] : [r.path, methods];
  // Routes for other hosts are other routes; without hosts the key is what it always was.
  if (r.hosts !== undefined) key.push([...new Set(r.hosts.map(canonicalHost))].sort());
  return JSON.stringify(key);
}

/** A route whose `auth` verifies tokens needs a key source: its own or the top level's. */
export function checkAuthKeys(config: GatewayConfig, route: RouteConfig, i: number, ctx: z.RefinementCtx): void {
  const own = route['auth'] as Record<string, unknown> | string | false | undefined;
  if (own === undefined || own === false || own === 'none') return;
  if (typeof own === 'object' && own['mode'] === 'none') return;
  const hasKey = (o: unknown): boolean => typeof o === 'object' && o !== null && ['secret', 'publicKey', 'jwksUrl'].some((k) => (o as Record<string, unknown>)[k] !== undefined);
  if (hasKey(own) || hasKey(config.auth)) {
    checkInheritedAlgorithms(config.auth, own, i, ctx);
    return;
  }
  ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth'], message: 'verifies tokens but has no key: set secret, publicKey or jwksUrl here or in the top-level auth' });
}

type AuthObject = Record<string, unknown>;
const HMAC: readonly string[] = HMAC_ALGORITHMS;

/**
 * `algorithms` from one auth object, a key from the other (the stage's
 * merge, lib/stages/auth/index.ts): each object's schema checks only its
 * own pair, and jwtAuth refused the mix at start with no key path.
 */
function checkInheritedAlgorithms(top: unknown, own: AuthObject | string, i: number, ctx: z.RefinementCtx): void {
  if (typeof own !== 'object') return;
  const kind = (o: AuthObject): 'a shared secret' | 'a public key' | null =>
    o['secret'] !== undefined ? 'a shared secret' : o['publicKey'] !== undefined || o['jwksUrl'] !== undefined ? 'a public key' : null;
  const topObj: AuthObject = typeof top === 'object' && top !== null ? top as AuthObject : {};
  const ownKind = kind(own);
  const topKind = kind(topObj);
  const fits = (alg: string, k: string): boolean => HMAC.includes(alg) === (k === 'a shared secret');
  if (ownKind !== null && own['algorithms'] === undefined && topKind === null && Array.isArray(topObj['algorithms'])) {
    const unfit = (topObj['algorithms'] as string[]).filter((alg) => !fits(alg, ownKind));
    if (unfit.length > 0) ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth'], message: `inherits algorithms ${unfit.join(', ')} from the top-level auth, which its own key (${ownKind}) cannot verify: set algorithms here` });
  } else if (ownKind === null && topKind !== null && Array.isArray(own['algorithms'])) {
    (own['algorithms'] as string[]).forEach((alg, j) => {
      if (!fits(alg, topKind)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'auth', 'algorithms', j], message: `${alg} cannot be verified with the top-level auth's key (${topKind})` });
    });
  }
}
