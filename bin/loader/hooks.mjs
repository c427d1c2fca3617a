// Node module hooks that run TypeScript on Node 20 (`rxgate/register`, and
// rxgate's own sources in development): esbuild strips the types file by
// file. Unlike tsx this keeps no function names (`keepNames` wraps every
// closure in a defineProperty call, which costs the hot path several
// microseconds per request). Only `.ts` files are transformed, and esbuild is
// loaded on the first one: the compiled package registers these hooks in
// its worker threads without needing esbuild installed.
import { readFile } from 'node:fs/promises';

let esbuild;

async function loadEsbuild() {
  try {
    return await import('esbuild');
  } catch (err) {
    if (err?.code !== 'ERR_MODULE_NOT_FOUND') throw err;
    return null;
  }
}

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts') || !url.startsWith('file:')) return nextLoad(url, context);
  esbuild ??= await loadEsbuild();
  // Without esbuild, leave .ts to Node (its own type stripping on 22.6+).
  if (esbuild === null) return nextLoad(url, context).catch((err) => {
    if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
    throw new Error(`rxgate/register: ${url} is TypeScript and esbuild is not installed (npm install --save-dev esbuild), or use Node >= 22.6 with --experimental-strip-types`, { cause: err });
  });
  const path = new URL(url);
  const source = await readFile(path, 'utf8');
  const { code } = await esbuild.transform(source, {
    loader: 'ts',
    format: 'esm',
    target: 'node20',
    sourcemap: 'inline',
    sourcefile: path.pathname,
  });
  return { format: 'module', source: code, shortCircuit: true };
}
