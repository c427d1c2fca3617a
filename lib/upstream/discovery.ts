import { readFile } from 'node:fs/promises';
import { parseDuration, type Duration } from '../duration.ts';
import { after, type Runtime } from '../runtime.ts';
import type { UpstreamSpec } from './service-options.ts';

/** A running discovery source: `stop` ends its timers. */
export interface Discovery {
  stop(): void;
}

/** What a discovery source factory gets. */
export interface DiscoveryContext {
  readonly service: string;
  readonly runtime: Runtime;
  /** The options under the source's key (`dns: {…}`, `file: {…}`). */
  readonly options: unknown;
  /** Hands the source's current instances to the service (an empty list is ignored). */
  readonly update: (instances: UpstreamSpec[]) => void;
  /** Reports a failed lookup; the service keeps its instances. */
  readonly error: (err: unknown) => void;
}

export type DiscoveryFactory = (ctx: DiscoveryContext) => Discovery;

const sources = new Map<string, DiscoveryFactory>();

/** Registers a discovery source under `name` (the key under a service's `discovery:`). */
export function defineDiscovery(name: string, factory: DiscoveryFactory): void {
  sources.set(name, factory);
}

export function discoveryFactory(name: string): DiscoveryFactory | undefined {
  return sources.get(name);
}

/**
 * Starts each source (`[name, options]`), pushing them on `running`; the
 * promise settles once every source has answered or failed once.
 */
export function startDiscovery(
  sources: Array<[string, unknown]>,
  base: Pick<DiscoveryContext, 'service' | 'runtime'>,
  running: Discovery[],
  update: (instances: UpstreamSpec[]) => void,
  error: (kind: string, err: unknown, what?: string) => void,
): Promise<void> {
  const unknown = sources.find(([kind]) => discoveryFactory(kind) === undefined);
  if (unknown !== undefined) throw new TypeError(`service ${base.service} discovery: unknown source ${JSON.stringify(unknown[0])}`);
  return Promise.all(sources.map(([kind, options]) => new Promise<void>((resolve) => {
    running.push(discoveryFactory(kind)!({
      ...base,
      options,
      update: (specs) => {
        // An empty answer keeps the instances the service has (a lookup hiccup, not an empty service): said in the log,
        // not as a failure (the lookup answered). Envoy's STRICT_DNS empties the cluster instead: docs/upstream-pools.md.
        if (specs.length === 0) error(kind, undefined, 'answered no instances: the current ones are kept');
        else update(specs);
        resolve();
      },
      error: (err) => {
        error(kind, err);
        resolve();
      },
    }));
  }))).then(() => undefined);
}

/** `discovery: { file: { path, interval } }`. */
export interface FileDiscoveryOptions {
  /** A JSON array of instances (`"http://…"` or `{ "url", "weight" }`), or one URL a line (`#` comments). */
  path: string;
  /** How often the file is read again. @default '5s' */
  interval?: Duration;
}

/** Parses a discovery file: a JSON array, or one URL (and optional weight) a line. */
export function parseInstances(text: string): UpstreamSpec[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) return JSON.parse(trimmed) as UpstreamSpec[];
  const out: UpstreamSpec[] = [];
  for (const line of trimmed.split('\n')) {
    const [url, weight] = line.replace(/#.*/, '').trim().split(/\s+/);
    if (url === undefined || url === '') continue;
    out.push(weight === undefined ? url : { url, weight: Number(weight) });
  }
  return out;
}

/**
 * A watched file: read at start and every `interval` on the runtime's
 * scheduler; a change of content replaces the instances. A file that cannot
 * be read or parsed leaves them as they are.
 */
export function fileDiscovery(ctx: DiscoveryContext): Discovery {
  const o = ctx.options as FileDiscoveryOptions;
  const intervalMs = parseDuration(o.interval ?? '5s', `service ${ctx.service} discovery.file.interval`);
  if (!(intervalMs > 0)) throw new TypeError(`service ${ctx.service} discovery.file.interval: expected a positive duration`);
  let last: string | null = null;
  let stopped = false;
  let timer = { unsubscribe: () => undefined } as { unsubscribe(): void };
  const read = (): void => {
    readFile(o.path, 'utf8').then((text) => {
      if (stopped || text === last) return;
      last = text;
      ctx.update(parseInstances(text));
    }, ctx.error).catch(ctx.error).finally(() => {
      if (!stopped) timer = after(ctx.runtime, intervalMs, read);
    });
  };
  read();
  return {
    stop() {
      stopped = true;
      timer.unsubscribe();
    },
  };
}

defineDiscovery('file', fileDiscovery);
