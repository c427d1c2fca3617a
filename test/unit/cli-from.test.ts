import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { chooseCliFrom } from '../support/cli-from.ts';

/**
 * The global setup starts the tests' rxgate processes from dist/ only when it
 * is the build of the current sources (test/support/cli-from.ts); anything
 * short of that keeps the loader, so no test runs stale code. Checked on a
 * small project of the same shape, built with the repository's tsc.
 */

const TSC = join(import.meta.dirname, '../../node_modules/typescript/bin/tsc');
const built = mkdtempSync(join(tmpdir(), 'rxgate-cli-from-'));
const root = `${built}-case`;
afterAll(() => {
  rmSync(built, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
});

const write = (path: string, text: string, at = root): void => {
  mkdirSync(join(at, path, '..'), { recursive: true });
  writeFileSync(join(at, path), text);
};
/** Sets a file's mtime `seconds` from the build stamp's. */
const age = (path: string, seconds: number): void => {
  const at = statSync(join(root, 'dist/.tsbuildinfo')).mtimeMs / 1000 + seconds;
  utimesSync(join(root, path), at, at);
};
const build = (at: string): void => {
  execFileSync(process.execPath, [TSC, '-p', join(at, 'tsconfig.build.json')], { stdio: 'ignore' });
};

// One build of a small project shaped like the repository's; each case works on a copy (mtimes kept).
beforeAll(() => {
  write('tsconfig.build.json', JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'NodeNext', lib: ['ES5'], strict: true, rootDir: 'lib', outDir: 'dist', types: [], incremental: true, tsBuildInfoFile: 'dist/.tsbuildinfo' },
    include: ['lib'],
  }), built);
  write('package.json', '{ "type": "module" }', built);
  write('bin/run.mjs', '', built);
  write('lib/a.ts', 'export const a = 1;\n', built);
  write('lib/b.ts', 'export const b = 2;\n', built);
  for (const f of ['tsconfig.build.json', 'package.json', 'bin/run.mjs', 'lib/a.ts', 'lib/b.ts']) utimesSync(join(built, f), 1e9, 1e9);
  build(built);
});
beforeEach(() => {
  rmSync(root, { recursive: true, force: true });
  cpSync(built, root, { recursive: true, preserveTimestamps: true });
});

describe('where the tests start rxgate processes from', () => {
  it('dist/ when it is the build of the current sources', async () => {
    expect(await chooseCliFrom({}, root)).toEqual({ from: 'dist', why: 'dist/ is the build of the current sources' });
  });

  it('the loader when RXGATE_TEST_CLI=loader', async () => {
    expect(await chooseCliFrom({ RXGATE_TEST_CLI: 'loader' }, root)).toMatchObject({ from: 'loader', why: 'RXGATE_TEST_CLI=loader' });
  });

  it('the loader when a source, bin/ or package.json changed after the build', async () => {
    for (const file of ['lib/b.ts', 'bin/run.mjs', 'package.json']) {
      age(file, 1);
      expect(await chooseCliFrom({}, root)).toEqual({ from: 'loader', why: `${file} is newer than dist/` });
      age(file, -1);
    }
  });

  it('the loader when a source has no output, as a new file with an old mtime', async () => {
    write('lib/c.ts', 'export const c = 3;\n');
    age('lib/c.ts', -60);
    expect(await chooseCliFrom({}, root)).toMatchObject({ from: 'loader' });
  });

  it('the loader when an output is missing', async () => {
    rmSync(join(root, 'dist/b.js'));
    expect(await chooseCliFrom({}, root)).toEqual({ from: 'loader', why: 'lib/b.ts has no output in dist/' });
  });

  it('the loader when the build left errors to report (`tsc -b --dry`)', async () => {
    write('lib/b.ts', 'export const b: string = 2;\n');
    expect(() => build(root)).toThrow(); // tsc exits 2 and still writes dist/b.js and the stamp
    expect(await chooseCliFrom({}, root)).toEqual({ from: 'loader', why: '`tsc -b --dry` would build again' });
  }, 60_000);

  it('the loader when dist/ was never built', async () => {
    rmSync(join(root, 'dist'), { recursive: true });
    expect(await chooseCliFrom({}, root)).toMatchObject({ from: 'loader', why: expect.stringMatching(/never built/) });
  });
});
