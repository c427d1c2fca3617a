// Node module hooks that run rxgate's TypeScript sources: esbuild strips the
// types file by file. Unlike tsx this keeps no function names (`keepNames`
// wraps every closure in a defineProperty call, which costs the hot path
// several microseconds per request). Only `.ts` files are transformed.
import { readFile } from 'node:fs/promises';
import { transform } from 'esbuild';

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts') || !url.startsWith('file:')) return nextLoad(url, context);
  const path = new URL(url);
  const source = await readFile(path, 'utf8');
  const { code } = await transform(source, {
    loader: 'ts',
    format: 'esm',
    target: 'node20',
    sourcemap: 'inline',
    sourcefile: path.pathname,
  });
  return { format: 'module', source: code, shortCircuit: true };
}
