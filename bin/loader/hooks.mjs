// Node module hooks that run TypeScript on Node 20 (`rxgate/register`, and
// rxgate's own sources in development): esbuild strips the types file by
// file. Unlike tsx this keeps no function names (`keepNames` wraps every
// closure in a defineProperty call, which costs the hot path several
// microseconds per request). Only `.ts` files are transformed (typescript.mjs),
// and esbuild is loaded on the first one: a worker thread of the compiled
// package registers these hooks only for a `.ts` pipeline module
// (lib/server/worker-entry.mjs), and esbuild need not be installed until then.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isTypeScript } from './typescript.mjs';

const OPTIONS = { loader: 'ts', format: 'esm', target: 'node20', sourcemap: 'inline' };
// Bump when what an entry holds changes.
const CACHE_FORMAT = 1;

let esbuild;
/** Where transformed files are kept, a string once known; null: no cache (not writable, or no esbuild). */
let cacheDir;

async function loadEsbuild() {
  try {
    return await import('esbuild');
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    return null;
  }
}

// The output of a transform is kept on disk, in node_modules/.cache/rxgate-register/ beside the esbuild
// that made it (where the user's install writes; a process that cannot write there just runs without):
// every process start transformed its ~200 files again, ~0.4 s of the ~2.3 s of CPU rxgate's CLI took
// to load, and again in each worker thread. One entry per source path, named by a hash of the path,
// esbuild's version and the options; its first line is the hash of the source it was made from, so a
// changed file is transformed again and its entry replaced: at most one entry per file ever loaded.
async function openCache() {
  try {
    // node_modules/esbuild/lib/main.js -> node_modules/.cache/rxgate-register/
    const dir = join(dirname(createRequire(import.meta.url).resolve('esbuild')), '../../.cache/rxgate-register/');
    await mkdir(dir, { recursive: true });
    return dir;
  } catch {
    return null;
  }
}

const sha256 = (text) => createHash('sha256').update(text).digest('hex');

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !isTypeScript(url)) return nextLoad(url, context);
  esbuild ??= await loadEsbuild();
  // Without esbuild, leave .ts to Node (its own type stripping on 22.6+).
  if (esbuild === null) return nextLoad(url, context).catch((err) => {
    if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    throw new Error(`rxgate/register: ${url} is TypeScript and esbuild is not installed (npm install --save-dev esbuild), or use Node >= 22.6 with --experimental-strip-types`, { cause: err });
  });
  cacheDir ??= await openCache();
  const path = new URL(url);
  const source = await readFile(path, 'utf8');
  const entry = cacheDir === null ? null : `${cacheDir}${sha256(JSON.stringify([CACHE_FORMAT, esbuild.version, OPTIONS, path.pathname]))}.js`;
  const head = `//${sha256(source)}\n`;
  if (entry !== null) {
    const kept = await readFile(entry, 'utf8').catch(() => '');
    if (kept.startsWith(head)) return { format: 'module', source: kept.slice(head.length), shortCircuit: true };
  }
  const { code } = await esbuild.transform(source, { ...OPTIONS, sourcefile: path.pathname });
  if (entry !== null) {
    // Written aside and renamed, so a process reading the entry meanwhile sees the old one or the new one whole.
    const aside = `${entry}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    await writeFile(aside, head + code).then(() => rename(aside, entry)).catch(() => unlink(aside).catch(() => {}));
  }
  return { format: 'module', source: code, shortCircuit: true };
}
