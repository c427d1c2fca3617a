/**
 * Which media types are worth compressing. Patterns: exact
 * (`application/json`), a whole type (`text/*`), or a structured-syntax
 * suffix (`*+json`, `*+xml`). `text/event-stream` never is: compressors
 * hold events back until their buffer fills.
 */
export const DEFAULT_TYPES: readonly string[] = [
  'text/*',
  'application/json', 'application/javascript', 'application/x-javascript', 'application/ecmascript',
  'application/xml', 'application/wasm', 'application/vnd.ms-fontobject', 'application/x-font-ttf',
  '*+json', '*+xml', // application/problem+json, image/svg+xml, application/atom+xml…
  'font/ttf', 'font/otf', 'image/x-icon', 'image/vnd.microsoft.icon', 'image/bmp',
];

/** Compiles patterns into a test on a `Content-Type` value (parameters ignored). */
export function typeMatcher(patterns: readonly string[]): (contentType: string | undefined) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const suffixes: string[] = [];
  for (const p of patterns.map((t) => t.trim().toLowerCase())) {
    if (p.endsWith('/*')) prefixes.push(p.slice(0, -1));
    else if (p.startsWith('*+')) suffixes.push(p.slice(1));
    else if (/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(p)) exact.add(p);
    else throw new TypeError(`compression.types: ${JSON.stringify(p)} is not a media type, type/* or *+suffix`);
  }
  let last: string | undefined;
  let lastVerdict = false;
  return function compressible(contentType) {
    if (contentType === undefined) return false;
    if (contentType === last) return lastVerdict;
    const semi = contentType.indexOf(';');
    const type = (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
    const ok = type !== 'text/event-stream'
      && (exact.has(type) || prefixes.some((p) => type.startsWith(p)) || suffixes.some((s) => type.endsWith(s)));
    last = contentType;
    lastVerdict = ok;
    return ok;
  };
}
