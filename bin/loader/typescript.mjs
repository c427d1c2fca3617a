// What rxgate's loader runs as TypeScript: a `.ts` file, its URL perhaps
// with a query or a fragment (`p.ts?v=2`); the path decides, so `p.mjs?v=a.ts`
// stays JavaScript (review RJ, L3). Not `.mts`, `.cts` nor `.tsx`:
// Node 20 refuses those (ERR_UNKNOWN_FILE_EXTENSION) with or without it.
// hooks.mjs transforms what this says, and a worker thread registers the
// loader for a pipeline module it says is TypeScript (worker-entry.mjs):
// one test, so the two agree.
export function isTypeScript(url) {
  return url.replace(/[?#].*$/s, '').endsWith('.ts');
}
