import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';

/**
 * Where the tests' rxgate processes (test/support/rxgate-process.ts) load rxgate from, decided once per
 * vitest run by the global setup: `dist` when dist/ is the build of the current sources (`npm test` builds
 * it first), else `loader`, the sources through bin/loader (what every run did until session 12). Starting
 * from dist/ takes ~1 s of CPU a start off the ~2 s the loader takes (docs/testing.md, twelfth round); a
 * stale dist/ would run old code, so anything short of proof keeps the loader.
 */
export type CliFrom = 'dist' | 'loader';

export interface CliChoice {
  from: CliFrom;
  /** Why, for the line the run prints. */
  why: string;
}

const ROOT = join(import.meta.dirname, '../..');
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** What the build reads or what a start from dist/ depends on besides dist/: lib/, bin/, package.json, the tsconfig files. */
function inputs(root: string): string[] {
  const tsconfigs = readdirSync(root).filter((f) => /^tsconfig.*\.json$/.test(f)).map((f) => join(root, f));
  return [...filesUnder(join(root, 'lib')), ...filesUnder(join(root, 'bin')), join(root, 'package.json'), ...tsconfigs];
}

/** The newest of the inputs no older than `than` (ms), or undefined. */
export function newerInput(than: number, root = ROOT): string | undefined {
  let newest: { file: string; at: number } | undefined;
  for (const file of inputs(root)) {
    const at = existsSync(file) ? statSync(file).mtimeMs : -1;
    if (at >= than && (newest === undefined || at > newest.at)) newest = { file, at };
  }
  return newest && relative(root, newest.file);
}

/**
 * `dist` only when all of these hold: RXGATE_TEST_CLI is not `loader`; dist/.tsbuildinfo is newer than
 * every input (lib/, bin/, package.json, tsconfig*.json); `tsc -b --dry` finds the build up to date (a build
 * that stopped early or left errors to report is not); every lib/ source has its output; no build rewrote
 * dist/.tsbuildinfo meanwhile. The proof package.test.ts asks before it packs the repository's dist/.
 */
export async function chooseCliFrom(env: NodeJS.ProcessEnv = process.env, root = ROOT): Promise<CliChoice> {
  if (env['RXGATE_TEST_CLI'] === 'loader') return { from: 'loader', why: 'RXGATE_TEST_CLI=loader' };
  const info = join(root, 'dist/.tsbuildinfo');
  if (!existsSync(info)) return { from: 'loader', why: 'no dist/.tsbuildinfo: dist/ was never built here' };
  const stamp = statSync(info).mtimeMs;
  const newer = newerInput(stamp, root);
  if (newer !== undefined) return { from: 'loader', why: `${newer} is newer than dist/` };
  const dry = await promisify(execFile)(process.execPath, [TSC, '-b', '--dry', '--verbose', join(root, 'tsconfig.build.json')], { cwd: root })
    .then(({ stdout }) => stdout, (err: Error) => err.message);
  if (!/is up to date because/.test(dry)) return { from: 'loader', why: '`tsc -b --dry` would build again' };
  const missing = filesUnder(join(root, 'lib'))
    .filter((f) => /\.(ts|mjs)$/.test(f))
    .find((f) => !existsSync(join(root, 'dist', relative(join(root, 'lib'), f).replace(/\.ts$/, '.js'))));
  if (missing !== undefined) return { from: 'loader', why: `${relative(root, missing)} has no output in dist/` };
  const differs = sourceNotBuilt(info, root);
  if (differs !== undefined) return { from: 'loader', why: `${differs} is not the text dist/ was built from` };
  if (statSync(info).mtimeMs !== stamp) return { from: 'loader', why: 'a build rewrote dist/ while it was checked' };
  return { from: 'dist', why: 'dist/ is the build of the current sources' };
}

/**
 * A lib/ source whose text is not the one the last build compiled (its sha256 against the version
 * dist/.tsbuildinfo records), or undefined. mtimes alone miss a file saved while tsc was running
 * (older than the stamp it writes at the end) and a copy that keeps old mtimes.
 */
function sourceNotBuilt(info: string, root: string): string | undefined {
  const build = JSON.parse(readFileSync(info, 'utf8')) as { fileNames?: string[]; fileInfos?: Array<string | { version?: string }> };
  const versions = new Map<string, string | undefined>();
  (build.fileNames ?? []).forEach((f, i) => {
    const v = build.fileInfos?.[i];
    versions.set(resolve(dirname(info), f), typeof v === 'string' ? v : v?.version);
  });
  const changed = filesUnder(join(root, 'lib'))
    .filter((f) => /\.(ts|mjs)$/.test(f))
    .find((f) => versions.get(f) !== createHash('sha256').update(readFileSync(f)).digest('hex'));
  return changed && relative(root, changed);
}

/** The line the run prints: which mode, why, and what to do for the other. */
export function cliFromLine(choice: CliChoice): string {
  return choice.from === 'dist'
    ? `[rxgate tests] rxgate processes start FROM dist/ (${choice.why}; RXGATE_TEST_CLI=loader runs the sources through the loader)`
    : `[rxgate tests] rxgate processes start THROUGH THE TYPESCRIPT LOADER (${choice.why}): ~0.3 s more CPU a start; ` +
      '`npm run build` first (npm test does) to start them from dist/. cli, fleet and config-schema run bin/rxgate.mjs, ' +
      'which is dist/ whatever this says';
}
