import type { z } from 'zod';
import type { GatewayConfig, RouteConfig, ServiceConfig } from '../config/schema.ts';
import type { GatewayEvents } from '../observe/events.ts';
import type { Logger } from '../observe/log.ts';
import type { Resources } from '../resources/registry.ts';
import type { Runtime } from '../runtime.ts';
import type { Policy } from '../types.ts';
import type { Service } from '../upstream/service.ts';

/** What a stage gets when it is built for one route. */
export interface StageContext {
  /** The whole validated config. */
  readonly config: GatewayConfig;
  /** The route being built. */
  readonly route: RouteConfig;
  /** The route's name in metrics and logs (its `name`, else its path). */
  readonly routeName: string;
  /** The route's service as configured. */
  readonly serviceConfig: ServiceConfig;
  /** The running service: instances, pools, health. */
  readonly service: Service;
  /** Scheduler, clocks and randomness: pass it on to every factory and store. */
  readonly runtime: Runtime;
  /** Publish what happens here (`lib/observe/` turns events into metrics and logs). */
  readonly events: GatewayEvents;
  readonly logger: Logger;
  /** Shared objects by key (stores, breakers, Redis clients), reused across routes and rebuilds. */
  readonly resources: Resources;
}

/**
 * A stage that YAML can name: its options schema (zod: the one source of
 * the YAML validation and of the TypeScript options type) and how to build
 * its Policy for a route. Register it with `defineStage` and pass it to
 * `runCli(argv, { stages: [it] })` or `buildGateway(config, null, { stages })`.
 */
export interface StageDefinition<S extends z.ZodType = z.ZodType> {
  /** The name in `pipeline:` lists. */
  readonly name: string;
  /** The YAML key of its options on a route (and a service, with `service`). @default name */
  readonly key: string;
  /** The options' schema; errors name their key path (`routes[2].addHeader.name`). */
  readonly options: S;
  /**
   * Services may set the options too, for all their routes; a route's object
   * is merged over its service's, and `false` on either turns the stage off.
   * @default false
   */
  readonly service: boolean;
  /**
   * Built with `{}` when no route or service sets its options (retry and the
   * circuit breaker are on by default). @default false
   */
  readonly onByDefault: boolean;
  /** Builds the route's Policy; null leaves the stage out. Throws `TypeError` on options it refuses. */
  readonly build: (options: z.output<S>, ctx: StageContext) => Policy | null;
}

export interface StageSpec<S extends z.ZodType> {
  name: string;
  key?: string;
  options: S;
  service?: boolean;
  onByDefault?: boolean;
  build(options: z.output<S>, ctx: StageContext): Policy | null;
}

/**
 * Declares a stage YAML can use by name.
 *
 * ```ts
 * export const requireHeader = defineStage({
 *   name: 'requireHeader',
 *   options: z.strictObject({ name: z.string() }),
 *   build: ({ name }) => (next) => (req) => req.headers[name] ? next(req) : throwError(() => new BadRequestError(`missing ${name}`)),
 * });
 * ```
 */
export function defineStage<S extends z.ZodType>(spec: StageSpec<S>): StageDefinition<S> {
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(spec.name)) throw new TypeError(`defineStage: name must be a word like rateLimit, got ${JSON.stringify(spec.name)}`);
  return {
    name: spec.name,
    key: spec.key ?? spec.name,
    options: spec.options,
    service: spec.service ?? false,
    onByDefault: spec.onByDefault ?? false,
    build: spec.build,
  };
}

/**
 * The stages a gateway knows, by name: the built-in ones and those
 * registered in code. Two stages may share a YAML key only with the same
 * schema (the two timeouts read `timeouts`).
 */
export class StageRegistry {
  private readonly byName = new Map<string, StageDefinition>();

  constructor(stages: Iterable<StageDefinition> = []) {
    for (const s of stages) this.add(s);
  }

  add(stage: StageDefinition): this {
    if (this.byName.has(stage.name)) throw new TypeError(`stage ${JSON.stringify(stage.name)} is registered twice`);
    for (const other of this.byName.values()) {
      if (other.key === stage.key && other.options !== stage.options) {
        throw new TypeError(`stages ${other.name} and ${stage.name} both read the key ${JSON.stringify(stage.key)} with different schemas`);
      }
    }
    this.byName.set(stage.name, stage);
    return this;
  }

  get(name: string): StageDefinition | undefined {
    return this.byName.get(name);
  }

  get names(): string[] {
    return [...this.byName.keys()];
  }

  /** Every stage, in registration order. */
  [Symbol.iterator](): IterableIterator<StageDefinition> {
    return this.byName.values();
  }
}
