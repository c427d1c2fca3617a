import type { Runtime } from '../runtime.ts';
import type { GatewayRequest } from '../types.ts';
import type { Upstream } from './upstream.ts';

/**
 * Chooses one instance among candidates. `Service` hands it only instances
 * it may use for this attempt, best tier first (in rotation and not yet
 * tried by this request; else in rotation; else, in panic mode, the rest),
 * so a balancer never sees an ejected instance while a usable one exists,
 * and never has to know about retries. It runs on every request: keep
 * `pick` free of allocation.
 *
 * ```ts
 * defineBalancer('first', () => ({ pick: (candidates) => candidates[0]! }));
 * ```
 */
export interface Balancer {
  /**
   * One of `candidates` (never empty, never to be kept: the array is reused).
   * `req` is the request being sent (its headers, client address, `attempt`).
   */
  pick(candidates: readonly Upstream[], req: GatewayRequest | null): Upstream;
  /** A request to `upstream` got its response head (`ok`) or failed, `latencyMs` after it was sent. */
  observe?(upstream: Upstream, latencyMs: number, ok: boolean): void;
  /** The service's instances, at start and whenever discovery changes them. */
  update?(instances: readonly Upstream[]): void;
}

/** What a balancer factory gets for one service. */
export interface BalancerContext {
  /** The service's name. */
  readonly service: string;
  /** Randomness and clocks. */
  readonly runtime: Runtime;
  /** The options under the service's key named after the balancer (`hash: { header: x-user }`), or undefined. */
  readonly options: unknown;
}

export type BalancerFactory = (ctx: BalancerContext) => Balancer;

const registry = new Map<string, BalancerFactory>();

/**
 * Registers a balancer under `name`, usable from YAML (`balancer: name`).
 * Register before the config is parsed. Names are kebab-case words.
 */
export function defineBalancer(name: string, factory: BalancerFactory): void {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new TypeError(`defineBalancer: name must be kebab-case, got ${JSON.stringify(name)}`);
  registry.set(name, factory);
}

/** The factory registered as `name`, or undefined. */
export function balancerFactory(name: string): BalancerFactory | undefined {
  return registry.get(name);
}

/** The names of every registered balancer. */
export function balancerNames(): string[] {
  return [...registry.keys()];
}
