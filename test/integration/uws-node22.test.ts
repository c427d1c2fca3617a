import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { currentHost, uwsCandidates } from '../../lib/server/uws.ts';

/**
 * The loader under a real Node 22, taken from the npm registry
 * (`node-<platform>-<arch>@22` ships the binary): on glibc < 2.38 it must
 * refuse with its one message, on newer glibc it must load the official
 * build (or say its package is not installed). `RXGATE_NODE22` names a
 * Node 22 binary to use instead; .ci/run fetches into the same cache.
 */
const root = resolve(import.meta.dirname, '../..');
const CACHE = join(tmpdir(), 'rxgate-node22');
const MIN_GLIBC = [2, 38];

function node22(): { path: string } | { skip: string } {
  const given = process.env.RXGATE_NODE22;
  if (given !== undefined && given !== '') return existsSync(given) ? { path: given } : { skip: `RXGATE_NODE22=${given} does not exist` };
  if (process.platform === 'win32') return { skip: 'the registry package ships no Windows binary this test can unpack' };
  const cached = join(CACHE, 'package', 'bin', 'node');
  if (existsSync(cached)) return { path: cached };
  try {
    mkdirSync(CACHE, { recursive: true });
    execFileSync('npm', ['pack', `node-${process.platform}-${process.arch}@22`, '--pack-destination', CACHE, '--silent'], { stdio: 'pipe', timeout: 180_000 });
    const tarball = readdirSync(CACHE).find((f) => f.endsWith('.tgz'));
    if (tarball === undefined) return { skip: 'npm pack left no tarball' };
    execFileSync('tar', ['xzf', join(CACHE, tarball), '-C', CACHE], { stdio: 'pipe' });
    return existsSync(cached) ? { path: cached } : { skip: `the tarball has no ${cached}` };
  } catch (err) {
    return { skip: `could not fetch node-${process.platform}-${process.arch}@22 from the npm registry: ${(err as Error).message.split('\n')[0]}` };
  }
}

const found = node22();
if ('skip' in found) {
  console.warn(`\n[rxgate tests] SKIPPING the loader under a real Node 22: ${found.skip}` +
    (process.env.CI === 'true' ? ' (CI=true: only this download-dependent test is skipped)' : '') + '\n');
}

/** Loads lib/server/uws.ts under that Node (its type annotations stripped by Node itself) and reports the build or the refusal. */
function loadUnderNode22(path: string): { status: number | null; stdout: string; stderr: string } {
  const script = `import { uwsBuild } from ${JSON.stringify(pathToFileURL(join(root, 'lib/server/uws.ts')).href)};
try { console.log('build=' + uwsBuild().build + ' node=' + process.versions.node); }
catch (err) { console.error(err.message); process.exit(3); }`;
  const run = spawnSync(path, ['--experimental-strip-types', '--no-warnings', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

const glibc = currentHost().glibc;
const oldGlibc = process.platform === 'linux' && glibc !== null && compare(glibc.split('.').map(Number), MIN_GLIBC) < 0;

function compare(a: number[], b: number[]): number {
  return (a[0]! - b[0]!) || ((a[1] ?? 0) - (b[1] ?? 0));
}

describe.skipIf('skip' in found)('the uWS loader under a real Node 22', () => {
  const path = 'path' in found ? found.path : '';

  it.runIf(oldGlibc)(`refuses on glibc ${glibc} < 2.38 with one message naming Node 22, the glibc version and what works`, () => {
    const run = loadUnderNode22(path);
    expect(run.status).toBe(3);
    expect(run.stderr).toMatch(/^rxgate cannot start on Node 22\.\d+\.\d+ \(ABI \d+, /);
    expect(run.stderr).toContain(`glibc ${glibc}): @uwsjs/${process.platform}-${process.arch}-22 needs glibc ≥ 2.38`);
    expect(run.stderr).toContain('What works: Node 20 on any glibc Linux (2.27+), or Node 22/24/26 on glibc ≥ 2.38 (Debian 13, Ubuntu 24.04)');
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
  });

  it.runIf(!oldGlibc)('loads the official @uwsjs build where glibc allows it, or says its package is not installed', () => {
    const run = loadUnderNode22(path);
    const pkg = uwsCandidates({ node: '22.0.0', abi: '', platform: process.platform, arch: process.arch }).uwsjs;
    if (run.status === 0) expect(run.stdout).toMatch(/^build=uwsjs node=22\./);
    else expect(run.stderr).toContain(`${pkg} is not installed`);
  });
});
