import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { PipelineFactory } from './config/build.ts';
import type { StageDefinition } from './stages/define.ts';
import { ConfigError, parseConfig, readConfigText } from './config/load.ts';
import { ConfigBuildError } from './config/build-errors.ts';
import { checkBuild } from './config/check.ts';
import type { Gateway } from './gateway.ts';
import { createLogger, logLevel, logLevelEnvProblem } from './observe/log.ts';
import { isMainThread, workerData } from 'node:worker_threads';
import { configJsonSchema } from './config/json-schema.ts';
import { startWorkers } from './server/workers.ts';
import { serve, type Served } from './lifecycle/serve.ts';
import { handleSignals, holdReloads } from './lifecycle/signals.ts';
import { serveWorkers } from './lifecycle/serve-workers.ts';
import { ListenError } from './server/listen-error.ts';
import { setGatewayV8Flags } from './runtime.ts';
import type { Resources } from './resources/registry.ts';

export const USAGE = `Usage: rxgate --config FILE [--port N] [--host H]
       rxgate --demo        (the bundled example with its demo upstreams)
       rxgate schema        (print the config's JSON Schema, for editors)

  -c, --config FILE   YAML config (routes, services, policies)
  -p, --port N        listen on this port (overrides listen.port; 0 = any free port)
      --host H        listen on this address (overrides listen.host)
  -w, --workers N     run N gateway threads sharing the port (overrides workers)
      --check         validate the config and exit
      --demo          start demo upstreams on :3001-3003 and use examples/demo.yaml
  -h, --help          this text

Environment: RXGATE_LOG_LEVEL (over the config's log.level; default info), and any \${VAR:-default} the config uses.`;

// lib/cli.ts in a clone, dist/cli.js in the package: the root is one up from either.
const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export { configJsonSchema } from './config/json-schema.ts';

/** Ends the process for an error at start: a config a stage refuses (2), a listener that cannot bind (1); anything else is rethrown. */
function startFailed(err: unknown, file: string): never {
  // Options refused when a stage is built (TypeError) are config errors too.
  if (err instanceof TypeError) refused(err, file);
  // A port in use (public, redirect or admin listener): say which, no stack trace.
  if (err instanceof ListenError) {
    process.stderr.write(`rxgate: ${err.message}\n`);
    process.exit(1);
  }
  // Anything else is a bug or an environment problem: its stack is what to report.
  throw err;
}

/** Ends the process (2) for options refused while the config is built, as `ConfigError` lists the schema's: `--check` and a start say the same. */
function refused(err: TypeError, file: string): never {
  const problems = err instanceof ConfigBuildError ? err.problems : [err.message];
  process.stderr.write(`rxgate: invalid config ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
  process.exit(2);
}

export interface CliOptions {
  /** Builds each YAML route's handler. @default stagePipeline (the route's stages in order, then forward) */
  pipeline?: PipelineFactory;
  /** Stages registered in code, usable by name from YAML. */
  stages?: readonly StageDefinition[];
  /**
   * URL of the module that exports `defaultPipeline` and `stages` (pass
   * `import.meta.url`): worker threads (`--workers`) import it to build
   * their own gateway.
   */
  module?: string;
  /**
   * Called once the gateway serves, with what serves it and its full drain
   * (the gateway, then the closers). A worker thread relays the main
   * thread's reload and drain to these (worker-main.ts), which handles no
   * signals itself.
   */
  onServed?: (served: Served, drain: () => Promise<unknown>) => void;
  /** The config's text, built instead of the file's (a worker replacing one that crashed runs what the workers serve); reloads read the file. */
  configText?: string;
  /** The registry the gateway is built against (a worker thread asks its main thread before it listens: worker-main.ts). */
  resources?: Resources;
}

/**
 * Runs the gateway from command-line arguments. Exits the process with
 * status 2 on a bad config or bad arguments.
 */
export async function runCli(argv: string[], options: CliOptions = {}): Promise<Gateway | null> {
  const pipeline = options.pipeline ?? null;
  const stages = options.stages ?? [];
  const pipelineModule = options.module;
  // A worker thread imports the pipeline module for its exports, which runs
  // its top level there too: a `runCli(…, { module: import.meta.url })` in it
  // without an isMainThread guard (as docs once showed) printed the usage in
  // every worker (no argv there), and the gateway stopped.
  if (!isMainThread && pipelineModule !== undefined && pipelineModule === (workerData as { pipelineModule?: unknown } | null)?.pipelineModule) return null;
  if (argv[0] === 'schema') {
    process.stdout.write(JSON.stringify(configJsonSchema(stages), null, 2) + '\n');
    return null;
  }
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        port: { type: 'string', short: 'p' },
        host: { type: 'string' },
        workers: { type: 'string', short: 'w' },
        check: { type: 'boolean' },
        demo: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`rxgate: ${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (args.help === true) {
    process.stdout.write(USAGE + '\n');
    return null;
  }
  const file = args.config ?? (args.demo === true ? join(root, 'examples/demo.yaml') : undefined);
  if (file === undefined) {
    process.stderr.write(`rxgate: --config FILE is required\n\n${USAGE}\n`);
    process.exit(2);
  }
  let port: number | undefined;
  if (args.port !== undefined) {
    port = Number(args.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      process.stderr.write(`rxgate: --port must be a port number, got ${args.port}\n`);
      process.exit(2);
    }
  }

  let config;
  // Read once: with --workers, every worker builds from this text, not from the file as it is when each starts.
  let configText = '';
  try {
    configText = options.configText ?? readConfigText(file);
    config = parseConfig(configText, file, process.env, stages);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`rxgate: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const levelProblem = logLevelEnvProblem();
  if (levelProblem !== null) {
    // It overrides log.level: refused like a bad config, before anything starts.
    process.stderr.write(`rxgate: ${levelProblem}\n`);
    process.exit(2);
  }
  // Before --check returns: a check that says OK for what the start refuses is no check.
  const workers = args.workers !== undefined ? Number(args.workers) : config.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1) {
    process.stderr.write(`rxgate: --workers must be a whole number of at least 1, got ${args.workers}\n`);
    process.exit(2);
  }
  if (args.check === true) {
    // What a start builds, short of listening and connecting (lib/config/check.ts).
    try {
      await checkBuild(config, pipeline, stages);
    } catch (err) {
      if (err instanceof TypeError) refused(err, file);
      throw err;
    }
    process.stdout.write(`${file}: OK (${Object.keys(config.services).length} services, ${config.routes.length} routes)\n`);
    return null;
  }

  // GC settings (lib/runtime.ts), process-wide; a SIGHUP before the handlers below would end the process: held.
  if (isMainThread) setGatewayV8Flags();
  const reloadAsked = isMainThread ? holdReloads() : () => false;
  const logger = createLogger(logLevel(config.log?.level));
  const closers: Array<() => Promise<void>> = [];
  if (args.demo === true) {
    const { startDemoUpstreams } = await import('./demo-upstreams.ts');
    const servers = await startDemoUpstreams();
    logger.info('demo upstreams on 127.0.0.1:3001 (users), :3002 and :3003 (orders)');
    closers.push(async () => {
      for (const s of servers) s.close();
    });
  }

  if (workers > 1 && isMainThread) {
    if (pipelineModule === undefined) throw new TypeError('runCli: workers need the pipeline module URL');
    const workerArgv = ['--config', file, '--workers', '1',
      ...(port !== undefined ? ['--port', String(port)] : []),
      ...(args.host !== undefined ? ['--host', args.host] : [])];
    const pool = startWorkers(workers, { argv: workerArgv, pipelineModule, configText }, logger);
    logger.info({ workers }, 'rxgate started worker threads sharing one port');
    const main = await serveWorkers(pool, config, file, logger).catch(async (err: unknown) => {
      // Workers close their sockets first: exiting under a thread that holds uWS sockets aborts.
      pool.broadcast('stop');
      await pool.exited;
      return startFailed(err, file);
    });
    // Workers that could not start (each said why) or all crashed: nothing serves, so the process ends.
    void main.lost.then(() => {
      logger.error('every gateway worker has exited: rxgate stops');
      process.exit(1);
    });
    handleSignals({ drain: () => main.drain().then(() => Promise.all(closers.map((c) => c()))), reload: () => main.reload('signal'), logger, stopNow: () => main.stop() });
    if (reloadAsked()) void main.reload('signal');
    return null;
  }

  let served: Served;
  try {
    served = await serve(config, pipeline, {
      file, logger, stages,
      ...(port !== undefined ? { port } : {}),
      ...(args.host !== undefined ? { host: args.host } : {}),
      // A worker thread leaves the admin listener and the file watch to the main thread.
      ...(isMainThread ? {} : { admin: false, watch: false }),
      ...(options.resources !== undefined ? { resources: options.resources } : {}),
    });
  } catch (err) {
    startFailed(err, file);
  }
  const listened = served.port;
  if (args.demo === true) {
    const admin = served.adminPort === null ? '' : `  curl -s http://127.0.0.1:${served.adminPort}/metrics | head\n  open   http://127.0.0.1:${served.adminPort}/        (the admin page: routes, instances, live plots)\n`;
    process.stdout.write(`\nrxgate demo is up. Try:\n  curl -i http://127.0.0.1:${listened}/api/users/42\n  curl -i http://127.0.0.1:${listened}/api/orders/7\n  curl -i http://127.0.0.1:${listened}/__rxgate/health\n${admin}\n`);
  }
  const drain = (): Promise<unknown> => served.drain().then(() => Promise.all(closers.map((c) => c())));
  // In a worker thread the main thread decides: worker-main.ts relays its reload and drain.
  if (isMainThread) handleSignals({ drain, reload: () => served.reload('signal'), logger, stopNow: () => served.close() });
  if (reloadAsked()) void served.reload('signal');
  keepServingOnRejection(logger, served.gateway.metrics.errorCounts);
  options.onServed?.(served, drain);
  return served.gateway;
}

/**
 * A Promise nothing handled (a stage's `async` function nested inside
 * another stage, review RR2 #1) is logged and counted as an INTERNAL_ERROR
 * instead of ending the process (Node's default), as a failing nginx module
 * or Envoy filter never takes the server down. Per thread: a worker's own.
 */
function keepServingOnRejection(logger: Gateway['logger'], errorCounts: Map<string, number>): void {
  process.on('unhandledRejection', (reason: unknown) => {
    errorCounts.set('INTERNAL_ERROR', (errorCounts.get('INTERNAL_ERROR') ?? 0) + 1);
    logger.error({ err: reason }, 'unhandled rejection (a Promise nothing handled, e.g. a stage\'s async function): rxgate serves on');
  });
}
