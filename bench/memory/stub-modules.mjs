// A target with some packages not loaded (issue 10, 4c, fourteenth round):
// preloaded with `--import=file:///…/bench/memory/stub-modules.mjs?only=zod,yaml`,
// every import of those packages (and their subpaths) gets a module with the
// same export names whose values are one inert Proxy (any property, call or
// `new` gives the Proxy back), so the gateway's module graph still links and
// runs its top level, but the packages' code never loads in this isolate.
// The export names are read by importing the real package in the loader's own
// thread (a separate isolate). For measuring what a package's code costs the
// serving heap; nothing that uses the stubbed package works.
import { register } from 'node:module';

const HOOKS = '#hooks';
if (!import.meta.url.endsWith(HOOKS)) {
  const only = (new URL(import.meta.url).searchParams.get('only') ?? '').split(',').filter(Boolean);
  register(new URL(HOOKS, import.meta.url), { data: { only } });
}

let only = [];
export function initialize(data) { only = data.only; }

const stubbed = (spec) => only.some((p) => spec === p || spec.startsWith(`${p}/`));

export async function resolve(spec, context, next) {
  if (!stubbed(spec)) return next(spec, context);
  const real = await next(spec, context);
  return { url: `stub:${encodeURIComponent(real.url)}`, shortCircuit: true };
}

export async function load(url, context, next) {
  if (!url.startsWith('stub:')) return next(url, context);
  const names = Object.keys(await import(decodeURIComponent(url.slice(5)))).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
  const source = [
    "const h = { get: (t, k) => (k === Symbol.toPrimitive ? () => '' : k === 'then' ? undefined : p), apply: () => p, construct: () => p };",
    'const p = new Proxy(function stub() {}, h);',
    'export default p;',
    `export { ${names.map((n) => `p as ${n}`).join(', ')} };`,
  ].join('\n');
  return { format: 'module', source, shortCircuit: true };
}
