import { formatPath } from './paths.ts';

/**
 * A config refused while it is built (options a stage, a service or the
 * router refuses past the schema), every problem with its key path. A
 * `TypeError`, as a stage's own refusal is, so callers that treat those as
 * config errors (the CLI's exit 2, a reload that keeps the running config)
 * need nothing new.
 */
export class ConfigBuildError extends TypeError {
  override readonly name = 'ConfigBuildError';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('\n'));
  }
}

/** A refusal already placed under its key path (one `ConfigBuildError` problem). */
class KeyedError extends TypeError {
  override readonly name = 'KeyedError';
}

/**
 * `err` (a `TypeError` a factory threw) placed under the key path `path`;
 * anything else, or an error already placed, as it is. A factory's message
 * often starts with its own name for the key (`retry.attempts: …`,
 * `service users ejectAfter: …`): with one of `names` that start becomes the
 * path (`routes[2].retry.attempts: …`); `keys` are the option keys a bare
 * `window: …` may name.
 */
export function keyed(err: unknown, path: readonly PropertyKey[], names: readonly string[] = [], keys: readonly string[] = []): unknown {
  if (!(err instanceof TypeError) || err instanceof KeyedError || err instanceof ConfigBuildError) return err;
  return new KeyedError(placed(formatPath(path), err.message, names, keys), { cause: err });
}

function placed(where: string, message: string, names: readonly string[], keys: readonly string[]): string {
  for (const name of names) {
    if (!message.startsWith(name)) continue;
    const rest = message.slice(name.length);
    if (rest.startsWith(': ')) return where + rest;
    if (/^[. ][A-Za-z][\w.[\]]*:/.test(rest)) return `${where}.${rest.slice(1)}`;
  }
  const bare = /^([A-Za-z]\w*)[.:[]/.exec(message);
  if (bare !== null && keys.includes(bare[1]!)) return `${where}.${message}`;
  return `${where}: ${message}`;
}

/**
 * Runs `build` for each item, collecting every refusal under its path
 * instead of stopping at the first (a service's, met by each of its routes,
 * once), and throws them together. `place` puts a refusal that has no path
 * yet under the item's.
 */
export function collectProblems<T, R>(items: readonly T[], build: (item: T, i: number) => R, place: (err: unknown, item: T, i: number) => unknown = (err) => err): R[] {
  const out: R[] = [];
  const problems = new Set<string>();
  items.forEach((item, i) => {
    try {
      out.push(build(item, i));
    } catch (thrown) {
      const err = place(thrown, item, i);
      if (err instanceof ConfigBuildError) for (const p of err.problems) problems.add(p);
      else if (err instanceof KeyedError) problems.add(err.message);
      else throw err;
    }
  });
  if (problems.size > 0) throw new ConfigBuildError([...problems]);
  return out;
}
