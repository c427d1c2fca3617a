import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The package as npm ships it: built from the current sources, packed with
 * `npm pack`, installed from the tarball into a project of its own, and used
 * from plain JavaScript with no loader. The build goes to a staging copy
 * (package.json and its `files`), not to the repository's dist/, which other
 * tests run while this one builds. When the repository's dist/ already is the
 * build of the current sources (`npm test` builds it first), the staging copy
 * takes it instead of building again (tsc: ~21 s of CPU).
 */
const ROOT = join(import.meta.dirname, '../..');
const MINUTES = 60_000;
const run = promisify(execFile);

// npm passes its settings to scripts as npm_* variables (`npm test` sets the
// repository as the prefix): the temp project's npm must not see them.
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));

const dir = mkdtempSync(join(tmpdir(), 'rxgate-package-'));
const staging = join(dir, 'staging');
const project = join(dir, 'project');

function sh(command: string, args: string[], cwd: string, timeout = 3 * MINUTES): Promise<{ stdout: string; stderr: string }> {
  return run(command, args, { cwd, env, timeout, maxBuffer: 16 * 1024 * 1024 });
}

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

/** The lib/ source a file of dist/ was built from (worker-entry.mjs is copied as .mjs). */
function sourceOf(built: string): string {
  return built.replace(/\.js(\.map)?$|\.d\.ts$/, '.ts').replace(/\.mjs(\.map)?$|\.d\.mts$/, '.mjs');
}

function filesUnder(root: string, at = ''): string[] {
  return readdirSync(join(root, at), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesUnder(root, join(at, e.name)) : [join(at, e.name)]);
}

/**
 * Copies the repository's dist/ into the staging copy when it is the build of the current sources:
 * `tsc -b --dry` finds its .tsbuildinfo newer than every input (each lib/ file, the tsconfig files) and
 * nothing left to emit, every source has its .js, and no build rewrote it while it was copied. Files of
 * sources since removed stay out (an incremental build leaves them; npm's prepare starts from an empty
 * dist/). Returns false, having copied nothing, when it is not: the caller builds.
 */
async function copyCurrentDist(to: string): Promise<boolean> {
  const dist = join(ROOT, 'dist');
  const info = join(dist, '.tsbuildinfo');
  if (!existsSync(info)) return false;
  const stamp = statSync(info).mtimeMs;
  const dry = await sh(process.execPath, [TSC, '-b', '--dry', '--verbose', join(ROOT, 'tsconfig.build.json')], ROOT);
  if (!/is up to date because/.test(dry.stdout)) return false;
  const sources = filesUnder(join(ROOT, 'lib')).filter((f) => /\.(ts|mjs)$/.test(f));
  if (sources.some((f) => !existsSync(join(dist, f.replace(/\.ts$/, '.js'))))) return false;
  for (const f of filesUnder(dist)) {
    if (f === '.tsbuildinfo' || existsSync(join(ROOT, 'lib', sourceOf(f)))) cpSync(join(dist, f), join(to, f));
  }
  if (statSync(info).mtimeMs === stamp) return true;
  rmSync(to, { recursive: true, force: true });
  return false;
}

describe('the npm package', () => {
  beforeAll(async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[]; devDependencies: Record<string, string> };
    mkdirSync(staging);
    cpSync(join(ROOT, 'package.json'), join(staging, 'package.json'));
    for (const entry of pkg.files) {
      if (entry.startsWith('!') || entry === 'dist' || entry.startsWith('dist/')) continue;
      cpSync(join(ROOT, entry), join(staging, entry), { recursive: true });
    }
    if (!(await copyCurrentDist(join(staging, 'dist')))) {
      await sh(process.execPath, [TSC, '-p', join(ROOT, 'tsconfig.build.json'),
        '--outDir', join(staging, 'dist'), '--tsBuildInfoFile', join(staging, 'dist/.tsbuildinfo')], ROOT);
    }
    // `prepare` would build again: the staging copy has no sources to build from.
    const packed = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], staging);
    const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];

    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-rxgate', private: true, type: 'module' }));
    // esbuild only for the TypeScript pipeline on Node 20 (rxgate/register), as a user's dev dependency.
    await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, filename), `esbuild@${pkg.devDependencies['esbuild']!}`], project, 5 * MINUTES);
  }, 10 * MINUTES);

  it('ships dist/, bin/, the schema and the demo config, not the TypeScript sources', () => {
    const installed = join(project, 'node_modules/rxgate');
    const files = (path: string): string => readFileSync(join(installed, path), 'utf8');
    expect(files('dist/index.js')).toContain('export');
    expect(files('dist/index.d.ts')).toContain('Gateway');
    expect(files('rxgate.schema.json')).toBe(readFileSync(join(ROOT, 'rxgate.schema.json'), 'utf8'));
    expect(files('examples/demo.yaml')).toContain('services:');
    expect(() => files('lib/index.ts')).toThrow(/ENOENT/);
    expect(() => files('dist/.tsbuildinfo')).toThrow(/ENOENT/);
  });

  it('runs a gateway from a plain .mjs file: import { compose, forward, Gateway, Service } from \'rxgate\'', async () => {
    writeFileSync(join(project, 'gateway.mjs'), `
import { createServer } from 'node:http';
import { compose, forward, Gateway, Service } from 'rxgate';

const upstream = createServer((req, res) => res.end('upstream saw ' + req.url));
await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve));
const users = new Service('users', { upstreams: ['http://127.0.0.1:' + upstream.address().port] });
const gateway = new Gateway({
  host: '127.0.0.1', port: 0, services: [users],
  routes: [{ path: '/api/*', rewrite: { stripPrefix: '/api' }, handler: compose()(forward(users)) }],
});
const port = await gateway.listen();
const res = await fetch('http://127.0.0.1:' + port + '/api/hello');
console.log(res.status, await res.text());
await gateway.close();
upstream.close();
`);
    const { stdout } = await sh(process.execPath, ['gateway.mjs'], project, MINUTES);
    // Before it, the gateway's own log line (pino, on stdout).
    expect(stdout.trim().split('\n').at(-1)).toBe('200 upstream saw /hello');
  }, 2 * MINUTES);

  const typescript = `
import { parseDuration, type Duration } from 'rxgate';
const d: Duration = '30s';
console.log(parseDuration(d));
`;

  it('runs TypeScript that imports rxgate with --import rxgate/register (esbuild; the way on Node 20)', async () => {
    writeFileSync(join(project, 'check.ts'), typescript);
    const { stdout } = await sh(process.execPath, ['--import', 'rxgate/register', 'check.ts'], project, MINUTES);
    expect(stdout.trim()).toBe('30000');
  }, 2 * MINUTES);

  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  it.skipIf(major < 22 || (major === 22 && minor < 6))('runs TypeScript that imports rxgate with --experimental-strip-types (Node >= 22.6)', async () => {
    writeFileSync(join(project, 'strip.ts'), typescript);
    const { stdout } = await sh(process.execPath, ['--experimental-strip-types', '--no-warnings', 'strip.ts'], project, MINUTES);
    expect(stdout.trim()).toBe('30000');
  }, 2 * MINUTES);

  it('prints usage for npx rxgate --help, and the schema for npx rxgate schema', async () => {
    const [help, schema] = await Promise.all([
      sh('npx', ['rxgate', '--help'], project, MINUTES),
      sh('npx', ['rxgate', 'schema'], project, MINUTES),
    ]);
    expect(help.stdout).toContain('Usage: rxgate --config FILE');
    expect(schema.stdout).toBe(readFileSync(join(ROOT, 'rxgate.schema.json'), 'utf8'));
  }, 2 * MINUTES);
});
