/**
 * What the bench measures. Each target except `direct` is a server in its own
 * child process, forwarding to the shared upstream process.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareNginx } from './nginx.ts';

export interface TargetContext {
  repoRoot: string;
  scratchDir: string;
  upstreamOrigin: string;
  upstreamPort: number;
  /** Port assigned to this target. */
  port: number;
  /** Worker threads for the multi-core target. */
  workers: number;
  jwtSecret: string;
  /** Path of the nginx binary, null when not installed. */
  nginx: string | null;
}

/** How to start a target: an argv, or why it is not run. */
export type Launch =
  | { kind: 'direct' }
  | { kind: 'spawn'; command: string; args: string[]; env?: Record<string, string>; gcProbe?: boolean }
  | { kind: 'skip'; reason: string };

export interface Target {
  name: string;
  /** One line for the report. */
  label: string;
  /**
   * Load with one URL for every request (true: the cache hit path) or a new
   * URL per request (false: every other target, so the full pipeline's cache
   * runs its miss path and every target sees the very same load).
   */
  fixedUrl: boolean;
  /** Checks after start: a request without a token must get 401 (`auth`); the second request for one URL must be a cache hit (`cacheHit`). */
  checks?: readonly ('auth' | 'cacheHit')[];
  /** Run only when named in `--targets` (a diagnostic, not part of the comparison). */
  optional?: boolean;
  /** A start failure means "not supported" when the output matches this. */
  unsupported?: RegExp;
  launch(ctx: TargetContext): Launch;
}

const LOADER = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'loader', 'register.mjs');
/** Preloaded into every Node target: GC counts on SIGUSR2 (see gc-probe.mjs). */
const GC_PROBE = join(dirname(fileURLToPath(import.meta.url)), 'gc-probe.mjs');

/** A TypeScript file run with rxgate's own loader (the same one the CLI uses). */
const typescript = (file: string, args: string[]): Launch => ({
  kind: 'spawn',
  command: process.execPath,
  args: ['--import', GC_PROBE, '--import', LOADER, file, ...args],
  gcProbe: true,
});

/** `node bin/rxgate.mjs`, the CLI users run, with a config (and V8 flags before the script, if any). */
function rxgate(ctx: TargetContext, config: string, extra: string[] = [], nodeFlags: string[] = []): Launch {
  const args = ['--config', join(ctx.repoRoot, 'bench', 'configs', config), '--port', String(ctx.port), ...extra];
  const env = { BENCH_UPSTREAM: ctx.upstreamOrigin, BENCH_JWT_SECRET: ctx.jwtSecret, NODE_ENV: 'production' };
  const bin = join(ctx.repoRoot, 'bin', 'rxgate.mjs');
  if (existsSync(bin)) return { kind: 'spawn', command: process.execPath, args: [...nodeFlags, '--import', GC_PROBE, bin, ...args], env, gcProbe: true };
  // Reported as "failed to start", like any other start failure.
  return { kind: 'spawn', command: process.execPath, args: ['-e', 'console.error("rxgate entry not found: pipeline.ts or bin/rxgate.mjs"); process.exit(1)'] };
}

export const TARGETS: readonly Target[] = [
  {
    name: 'direct',
    label: 'the upstream itself, no proxy (the ceiling)',
    fixedUrl: false,
    launch: () => ({ kind: 'direct' }),
  },
  {
    name: 'bare',
    label: 'rxgate, bare forward route (`bench/configs/bare.yaml`)',
    fixedUrl: false,
    launch: (ctx) => rxgate(ctx, 'bare.yaml'),
  },
  {
    name: 'policies',
    label: 'rxgate, the policies without the cache (`bench/configs/policies.yaml`: auth, rate limit, breaker, retry, timeouts)',
    fixedUrl: false,
    checks: ['auth'],
    launch: (ctx) => rxgate(ctx, 'policies.yaml'),
  },
  {
    name: 'full',
    label: 'rxgate, full pipeline, cache miss path (`bench/configs/full.yaml`, a new URL per request)',
    fixedUrl: false,
    checks: ['auth'],
    launch: (ctx) => rxgate(ctx, 'full.yaml'),
  },
  {
    name: 'full-hit',
    label: 'rxgate, full pipeline, cache hit path (`bench/configs/full.yaml`, one URL)',
    fixedUrl: true,
    checks: ['auth', 'cacheHit'],
    launch: (ctx) => rxgate(ctx, 'full.yaml'),
  },
  {
    name: 'workers',
    label: 'rxgate, bare forward route on N worker threads (`--workers N`)',
    fixedUrl: false,
    unsupported: /unknown option '?--workers|workers?\b.*not supported/i,
    launch: (ctx) => rxgate(ctx, 'bare.yaml', ['--workers', String(ctx.workers)]),
  },
  {
    name: 'bare-nmr',
    label: 'rxgate, bare forward route, node started with `--no-memory-reducer` (the memory reducer A/B; only when named)',
    fixedUrl: false,
    optional: true,
    launch: (ctx) => rxgate(ctx, 'bare.yaml', [], ['--no-memory-reducer']),
  },
  {
    name: 'full-nmr',
    label: 'rxgate, full pipeline, cache miss path, node started with `--no-memory-reducer` (the memory reducer A/B; only when named)',
    fixedUrl: false,
    optional: true,
    launch: (ctx) => rxgate(ctx, 'full.yaml', [], ['--no-memory-reducer']),
  },
  {
    name: 'full-hgp',
    label: 'rxgate, full pipeline, cache miss path, node started with `--heap-growing-percent=300` (the launcher flag A/B; only when named)',
    fixedUrl: false,
    optional: true,
    checks: ['auth'],
    launch: (ctx) => rxgate(ctx, 'full.yaml', [], ['--heap-growing-percent=300']),
  },
  {
    name: 'minimal',
    label: 'hand-written uWebSockets.js + undici forwarder, no RxJS (`bench/minimal-forwarder.ts`, the floor of our stack)',
    fixedUrl: false,
    launch: (ctx) =>
      typescript(join(ctx.repoRoot, 'bench', 'minimal-forwarder.ts'), ['--port', String(ctx.port), '--upstream', ctx.upstreamOrigin]),
  },
  {
    name: 'fastify',
    label: 'fastify + @fastify/http-proxy (undici) (`bench/fastify-proxy.ts`)',
    fixedUrl: false,
    launch: (ctx) =>
      typescript(join(ctx.repoRoot, 'bench', 'fastify-proxy.ts'), ['--port', String(ctx.port), '--upstream', ctx.upstreamOrigin]),
  },
  {
    name: 'nginx',
    label: 'nginx `proxy_pass`, upstream keepalive, 1 worker process (`bench/nginx.ts`)',
    fixedUrl: false,
    launch: (ctx) => {
      if (ctx.nginx === null) return { kind: 'skip', reason: 'nginx is not installed' };
      const args = prepareNginx({ port: ctx.port, upstreamPort: ctx.upstreamPort, dir: join(ctx.scratchDir, 'nginx') });
      return { kind: 'spawn', command: ctx.nginx, args };
    },
  },
];

export function selectTargets(names: readonly string[] | null): Target[] {
  if (names === null) return TARGETS.filter((t) => t.optional !== true);
  const unknown = names.filter((name) => !TARGETS.some((t) => t.name === name));
  if (unknown.length > 0) {
    throw new TypeError(`unknown target(s): ${unknown.join(', ')}; known: ${TARGETS.map((t) => t.name).join(', ')}`);
  }
  // Keep the canonical order so reports line up across runs.
  return TARGETS.filter((t) => names.includes(t.name));
}
