/**
 * What bench/cache-hit.ts and bench/policies-stages.ts share: a bench
 * config's route built in one process the way the gateway builds it
 * (config loader, stage registry, route builder, events wired to metrics)
 * with a fake terminal in place of `forward`, a valid token for its JWT
 * auth, and requests shaped as the edge makes them.
 */
import { readFileSync } from 'node:fs';
import { SignJWT } from 'jose';
import { compose } from '../lib/compose.ts';
import { buildRoutes, type RouteBuildShared } from '../lib/config/build-routes.ts';
import { stageRegistry } from '../lib/config/build.ts';
import { parseConfig } from '../lib/config/load.ts';
import type { GatewayConfig } from '../lib/config/schema.ts';
import { GatewayEvents } from '../lib/observe/events.ts';
import { silentLogger } from '../lib/observe/log.ts';
import { GatewayMetrics } from '../lib/observe/metrics.ts';
import { observe } from '../lib/observe/wire.ts';
import { Resources } from '../lib/resources/registry.ts';
import { systemRuntime } from '../lib/runtime.ts';
import type { BodySink, GatewayRequest, GatewayResponse, Handler } from '../lib/types.ts';

const SECRET = 'bench-secret-0123456789abcdef0123456789abcdef';

/** A bench config file (a path, or a URL under bench/configs) with the harness's upstream and JWT secret. */
export function benchConfig(file: string | URL, name: string): GatewayConfig {
  return parseConfig(readFileSync(file, 'utf8'), name, { BENCH_UPSTREAM: 'http://127.0.0.1:1', BENCH_JWT_SECRET: SECRET });
}

/** `Authorization` with a token the config's auth accepts. */
export const authorization = `Bearer ${await new SignJWT({ sub: 'bench' }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h')
  .sign(new TextEncoder().encode(SECRET))}`;

/** The config's first route, with only the pipeline stages `keep` accepts, ending in `terminal`. */
export function routeHandler(config: GatewayConfig, keep: (stage: string) => boolean, terminal: Handler): Handler {
  const events = new GatewayEvents();
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  observe(events, metrics, silentLogger);
  const shared: RouteBuildShared = {
    logger: silentLogger, metrics, runtime: systemRuntime, resources: new Resources(), events,
    stages: stageRegistry(),
    pipeline: (ctx) => compose(...ctx.pipeline.filter(keep).map((n) => ctx.stage(n)))(terminal),
  };
  return buildRoutes(config, shared).routes[0]!.handler;
}

const NO_ORIGINS: readonly string[] = [];
const NO_PARAMS = Object.freeze({}) as Record<string, string>;
let counter = 0;

/** A GET of `path` as the edge's literal makes it, field for field (lib/server/edge.ts). */
export function benchRequest(path: string, headers: Record<string, string>): GatewayRequest {
  return {
    id: `r${counter++}`, method: 'GET', path, query: '', normalizedPath: path, encodedSlash: false,
    headers: { ...headers },
    remoteAddress: '127.0.0.1', protocol: 'http', body: null, params: NO_PARAMS, receivedAt: performance.now(),
    locals: {}, attempt: { number: 1, tried: NO_ORIGINS, instance: null },
  };
}

/**
 * An observer for a bench's requests: each 200 response's body is read into a
 * sink that counts its bytes; the first other status or error is kept in
 * `failed` for the batch to throw.
 */
export class DrainingObserver {
  bytes = 0;
  failed: unknown = null;
  private readonly sink: BodySink = { write: (chunk) => { this.bytes += chunk.byteLength; return true; }, end: () => {} };
  next(res: GatewayResponse): void {
    if (res.status !== 200) this.failed = new Error(`status ${res.status}`);
    if (res.body !== null) res.body.pipe(this.sink);
  }
  error(err: unknown): void {
    this.failed = err;
  }
  complete(): void {}
}
