import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { isTypeScript } from '../../bin/loader/typescript.mjs';

/**
 * What the loader transforms and what a worker thread registers it for are
 * one test (bin/loader/typescript.mjs; review RF, R2): the worker entry
 * registered the loader for `.mts`/`.cts` pipeline modules, which the loader
 * then left to Node (ERR_UNKNOWN_FILE_EXTENSION), and the loader left a
 * `.ts` URL with a query to Node, which the worker entry took for TypeScript.
 */
const ROOT = join(import.meta.dirname, '../..');
const dir = mkdtempSync(join(tmpdir(), 'rxgate-loader-urls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What `node --import bin/loader/register.mjs` makes of importing `specifier` from a module in `dir`. */
function importing(specifier: string): string {
  const main = join(dir, `main-${specifier.replace(/\W/g, '_')}.mjs`);
  writeFileSync(main, `await import(${JSON.stringify(specifier)}).then((m) => console.log('loaded', m.typed), (err) => console.log(err.code));\n`);
  const out = spawnSync(process.execPath, ['--import', join(ROOT, 'bin/loader/register.mjs'), main], { encoding: 'utf8', timeout: 20_000 });
  return out.stdout.trim();
}

writeFileSync(join(dir, 'typed.ts'), 'export const typed: number = 1;\n');
writeFileSync(join(dir, 'typed.mts'), 'export const typed: number = 2;\n');
// Valid JavaScript that esbuild's TypeScript reads as a generic call (x<2>(0)): it fails if transformed.
writeFileSync(join(dir, 'generic.mjs'), 'export const typed = 3; const x = 1; export default x < 2 > (0);\n');

describe('the TypeScript the loader runs', () => {
  it('is a .ts file, its URL with a query or a fragment too', () => {
    expect(importing('./typed.ts')).toBe('loaded 1');
    expect(importing('./typed.ts?v=2')).toBe('loaded 1');
    expect(importing('./typed.ts#x')).toBe('loaded 1');
  });

  it('is not a JavaScript file whose query or fragment names a .ts (review RJ, L3)', () => {
    expect(importing('./generic.mjs?v=a.ts')).toBe('loaded 3');
    expect(importing('./generic.mjs#a.ts')).toBe('loaded 3');
  });

  it('is not .mts (nor .cts, .tsx): Node refuses those, with the loader or without', () => {
    expect(importing('./typed.mts')).toBe('ERR_UNKNOWN_FILE_EXTENSION');
  });

  it('is what a worker thread registers the loader for (lib/server/worker-entry.mjs)', async () => {
    const urls = ['file:///p/pipeline.ts', 'file:///p/pipeline.ts?v=2', 'file:///p/pipeline.mjs?v=a.ts', 'file:///p/pipeline.mjs#a.ts', 'file:///p/pipeline.mjs?from=x.ts&b=1', 'file:///p/pipeline.mts', 'file:///p/pipeline.cts', 'file:///p/pipeline.tsx', 'file:///p/pipeline.mjs', 'file:///p/ts/pipeline.js'];
    expect(urls.filter((u) => isTypeScript(u))).toEqual(['file:///p/pipeline.ts', 'file:///p/pipeline.ts?v=2']);
    // The entry itself, run as a worker from a tree with no worker-main.ts (as dist/ has none), its register.mjs a stub that says so (review RJ, L2).
    const tree = join(dir, 'entry-tree');
    mkdirSync(join(tree, 'lib/server'), { recursive: true });
    mkdirSync(join(tree, 'bin/loader'), { recursive: true });
    copyFileSync(join(ROOT, 'lib/server/worker-entry.mjs'), join(tree, 'lib/server/worker-entry.mjs'));
    copyFileSync(join(ROOT, 'bin/loader/typescript.mjs'), join(tree, 'bin/loader/typescript.mjs'));
    writeFileSync(join(tree, 'bin/loader/register.mjs'), "import { parentPort } from 'node:worker_threads';\nparentPort.postMessage('registered');\n");
    const registers = async (url: string): Promise<boolean> => {
      const worker = new Worker(join(tree, 'lib/server/worker-entry.mjs'), { workerData: { pipelineModule: url } });
      let registered = false;
      worker.on('message', (msg) => { registered ||= msg === 'registered'; });
      worker.on('error', () => undefined); // its worker-main.ts is not there
      await new Promise((resolve) => worker.once('exit', resolve));
      return registered;
    };
    const registered: string[] = [];
    for (const url of urls) if (await registers(url)) registered.push(url);
    expect(registered).toEqual(['file:///p/pipeline.ts', 'file:///p/pipeline.ts?v=2']);
  });
});
