import { VirtualTimeScheduler } from 'rxjs';
import { parseDuration } from '../duration.ts';
import { silentLogger } from '../observe/log.ts';
import { GatewayMetrics } from '../observe/metrics.ts';
import { Resources } from '../resources/registry.ts';
import { virtualRuntime } from '../runtime.ts';
import type { StageDefinition } from '../stages/define.ts';
import { defineDiscovery, type DiscoveryContext } from '../upstream/discovery.ts';
import { buildGateway, type PipelineFactory } from './build.ts';
import type { GatewayConfig, ServiceConfig } from './schema.ts';

/**
 * `rxgate --check` past the schema: builds what a start builds (every
 * service, every route's stages through the pipeline factory, the route
 * table, the edge with its TLS certificates and limits), so a config the
 * check accepts does not stop the start, and one it refuses says the same
 * key paths. Short of what reaches out:
 * - no timer ever fires: the runtime's scheduler is virtual and never run;
 * - no health probe (sent at once at start): services are built without
 *   `health.path`, their thresholds still checked;
 * - no DNS lookup: `discovery.dns` is checked as the source checks it
 *   (its intervals; the schema checks `servers`) by a source that never resolves;
 * - no Redis connection: a client is disconnected as soon as it is made,
 *   before ioredis connects (on the next tick);
 * - no listener, no admin listener, no worker threads; JWKS are fetched
 *   on the first token anyway.
 * Throws what the start throws (`ConfigBuildError`, or the `TypeError` of
 * the edge); closes what it built either way.
 */
export async function checkBuild(config: GatewayConfig, pipeline: PipelineFactory | null, stages: readonly StageDefinition[] = []): Promise<void> {
  const resources = new CheckResources();
  let gateway;
  try {
    gateway = buildGateway(offline(config), pipeline, {
      stages, resources, runtime: virtualRuntime(new VirtualTimeScheduler()),
      logger: silentLogger, metrics: new GatewayMetrics({ defaultMetrics: false }), tracerProvider: null,
    });
  } catch (err) {
    await resources.close();
    throw err;
  }
  await gateway.close();
}

/** A registry whose Redis clients never connect (see `checkBuild`). */
class CheckResources extends Resources {
  override get<T>(key: string, make: () => T, close?: (value: T) => Promise<void> | void): T {
    return super.get(key, () => {
      const value = make();
      // lib/resources/redis.ts's key; ioredis connects on the next tick, so this is before it.
      if (key.startsWith('redis:')) void close?.(value);
      return value;
    }, close);
  }
}

const CHECK_DNS = 'check:dns';

/** `config` with each service's probes and DNS lookups replaced by what only checks their options. */
function offline(config: GatewayConfig): GatewayConfig {
  const services: Record<string, ServiceConfig> = {};
  for (const [name, sc] of Object.entries(config.services)) {
    const { health, discovery } = sc;
    const out: ServiceConfig = { ...sc };
    if (health !== undefined) {
      const { path: _path, ...rest } = health;
      out.health = rest as typeof health;
    }
    if (discovery?.dns !== undefined) {
      const { dns, ...rest } = discovery;
      out.discovery = { ...rest, [CHECK_DNS]: dns } as typeof discovery;
    }
    services[name] = out;
  }
  return { ...config, services };
}

/** What `dnsDiscovery` refuses when it is built, without resolving anything. */
function checkDns(ctx: DiscoveryContext): { stop(): void } {
  const o = ctx.options as { minInterval?: string | number; maxInterval?: string | number };
  parseDuration(o.minInterval ?? '1s', `service ${ctx.service} discovery.dns.minInterval`);
  parseDuration(o.maxInterval ?? '30s', `service ${ctx.service} discovery.dns.maxInterval`);
  return { stop: () => undefined };
}

defineDiscovery(CHECK_DNS, checkDns);
